//! Settling a statement against the fake (`statement_fate`): each of the four answers,
//! the tombstone that makes "never arrived" final, the race where the real job arrives
//! while the tombstone is sent, and the location taken from the table.

use super::jobs::tombstone_job;
use super::*;
use crate::warehouse::Fate;

const WAIT: Duration = Duration::from_secs(2);

/// jobs.get answers `body` for the job.
async fn mount_job(server: &MockServer, status: u16, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

fn not_found() -> Value {
    json!({"error": {"code": 404, "message": format!("Not found: Job {PROJECT}:US.{JOB_ID}"),
        "errors": [{"message": format!("Not found: Job {PROJECT}:US.{JOB_ID}"), "domain": "global", "reason": "notFound"}],
        "status": "NOT_FOUND"}})
}

#[tokio::test]
async fn a_finished_job_landed_with_its_dml_stats_and_bytes_billed() {
    let server = MockServer::start().await;
    mount_job(&server, 200, done(JOB_ID)).await;
    let bq = adapter(&server).await;

    let fate = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap();

    assert_eq!(
        fate,
        Fate::Landed(ReplaceOutcome {
            rows_deleted: Some(3),
            rows_inserted: 2,
            bytes_billed: Some(10_485_760)
        })
    );
    let gets = calls(&server, &format!("{JOBS}/{JOB_ID}")).await;
    assert_eq!(gets[0].1, [("location".to_owned(), "US".to_owned())]);
    assert!(inserts(&server).await.is_empty());
}

#[tokio::test]
async fn a_job_done_with_an_error_result_failed_with_its_class() {
    let server = MockServer::start().await;
    let mut failed = job(JOB_ID, "DONE");
    failed["status"]["errorResult"] =
        json!({"reason": "invalidQuery", "location": "query", "message": STREAMING_BUFFER});
    mount_job(&server, 200, failed).await;
    let bq = adapter(&server).await;

    let fate = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap();

    assert_eq!(
        fate,
        Fate::Failed(Error::StreamingBuffer {
            message: STREAMING_BUFFER.into()
        })
    );

    let cancelled = MockServer::start().await;
    let mut stopped = job(JOB_ID, "DONE");
    stopped["status"]["errorResult"] = json!({"reason": "stopped",
        "message": "Job execution was cancelled: User requested cancellation"});
    mount_job(&cancelled, 200, stopped).await;
    let fate = adapter(&cancelled)
        .await
        .statement_fate(&table(), JOB_ID, WAIT)
        .await
        .unwrap();
    let Fate::Failed(e) = fate else {
        panic!("{fate:?}")
    };
    assert_eq!(
        e.class(),
        ErrorClass::Transient,
        "a cancelled job may be sent again: {e}"
    );
}

#[tokio::test]
async fn a_running_job_is_waited_for_up_to_the_wait_then_running() {
    let server = MockServer::start().await;
    mount_job(&server, 200, job(JOB_ID, "RUNNING")).await;
    Mock::given(method("GET"))
        .and(path(format!("{QUERIES}/{JOB_ID}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(200))
                .set_body_json(query_results(JOB_ID, false)),
        )
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    let started = std::time::Instant::now();
    let fate = bq
        .statement_fate(&table(), JOB_ID, Duration::from_millis(700))
        .await
        .unwrap();

    assert_eq!(fate, Fate::Running);
    assert!(started.elapsed() < Duration::from_secs(2));
    let waits = calls(&server, &format!("{QUERIES}/{JOB_ID}")).await;
    assert!(!waits.is_empty());
    for (_, query) in &waits {
        let timeout_ms: u64 = query
            .iter()
            .find(|(k, _)| k == "timeoutMs")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        assert!(timeout_ms <= 700, "bounded by the wait: {query:?}");
    }
    assert!(inserts(&server).await.is_empty());
    assert!(calls(&server, &format!("{JOBS}/{JOB_ID}/cancel"))
        .await
        .is_empty());

    // Asked again, the job has finished meanwhile: waiting ends with its fate.
    let finishing = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "RUNNING")))
        .up_to_n_times(1)
        .mount(&finishing)
        .await;
    mount_completion(&finishing, JOB_ID, done(JOB_ID)).await;
    let fate = adapter(&finishing)
        .await
        .statement_fate(&table(), JOB_ID, WAIT)
        .await
        .unwrap();
    assert!(matches!(fate, Fate::Landed(_)), "{fate:?}");
}

#[tokio::test]
async fn a_job_bigquery_never_received_gets_a_tombstone_and_never_arrived() {
    let server = MockServer::start().await;
    mount_job(&server, 404, not_found()).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(tombstone_job(JOB_ID)))
        .expect(1)
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    let fate = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap();

    assert_eq!(fate, Fate::NeverArrived);
    let sent = inserts(&server).await;
    let tombstone = &sent[0];
    assert_eq!(
        tombstone["jobReference"],
        json!({"jobId": JOB_ID, "location": "US", "projectId": PROJECT})
    );
    assert_eq!(tombstone["configuration"]["query"]["query"], "SELECT 1");
    assert_eq!(
        tombstone["configuration"]["labels"]["streamguard_tombstone"],
        "true"
    );
    assert!(tombstone["configuration"]["query"]["queryParameters"].is_null());
}

#[tokio::test]
async fn a_tombstone_found_later_still_means_never_arrived() {
    let server = MockServer::start().await;
    mount_job(&server, 200, tombstone_job(JOB_ID)).await;
    let bq = adapter(&server).await;

    let fate = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap();

    assert_eq!(fate, Fate::NeverArrived);
    assert!(inserts(&server).await.is_empty());
}

#[tokio::test]
async fn when_the_real_job_wins_the_race_against_its_tombstone_its_fate_is_answered() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(not_found()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(409).set_body_string(error_body(
            409,
            "duplicate",
            &format!("Already Exists: Job {PROJECT}:US.{JOB_ID}"),
            "ALREADY_EXISTS",
        )))
        .expect(1)
        .mount(&server)
        .await;
    mount_job(&server, 200, done(JOB_ID)).await;
    let bq = adapter(&server).await;

    let fate = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap();

    assert!(
        matches!(&fate, Fate::Landed(o) if o.rows_inserted == 2),
        "{fate:?}"
    );
    assert_eq!(calls(&server, &format!("{JOBS}/{JOB_ID}")).await.len(), 2);
}

#[tokio::test]
async fn without_a_configured_location_the_tables_location_is_used() {
    let server = MockServer::start().await;
    let mut body = table_body();
    body["location"] = json!("asia-northeast1");
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    mount_job(&server, 404, not_found()).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(tombstone_job(JOB_ID)))
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.location = None;
    let bq = BigQuery::connect(s).await.unwrap();

    let fate = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap();

    assert_eq!(fate, Fate::NeverArrived);
    let gets = calls(&server, &format!("{JOBS}/{JOB_ID}")).await;
    assert_eq!(
        gets[0].1,
        [("location".to_owned(), "asia-northeast1".to_owned())]
    );
    assert_eq!(
        inserts(&server).await[0]["jobReference"]["location"],
        "asia-northeast1"
    );
}

#[tokio::test]
async fn a_fate_that_cannot_be_read_is_an_error_not_a_guess() {
    let server = MockServer::start().await;
    mount_job(
        &server,
        503,
        serde_json::from_str(&error_body(
            503,
            "backendError",
            "Backend error",
            "UNAVAILABLE",
        ))
        .unwrap(),
    )
    .await;
    let bq = adapter(&server).await;

    let error = bq.statement_fate(&table(), JOB_ID, WAIT).await.unwrap_err();

    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(inserts(&server).await.is_empty(), "no tombstone on a 503");
}
