//! Running one statement's job against the fake: waiting with jobs.getQueryResults'
//! server-side timeout, a failed job's final status from jobs.get, a single jobs.insert
//! per call whatever the failure, the 409 `duplicate` look-up (and its refusal of a
//! tombstoned id), and the `STREAMGUARD_BIGQUERY_JOB_TIMEOUT` bound.

use super::*;

#[tokio::test]
async fn waiting_uses_get_query_results_with_a_server_side_timeout_then_one_jobs_get() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "PENDING")))
        .mount(&server)
        .await;
    // The first call is held by the server (as BigQuery holds it up to timeoutMs) and
    // ends with the job still running; the second finds it complete.
    Mock::given(method("GET"))
        .and(path(format!("{QUERIES}/{JOB_ID}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(600))
                .set_body_json(query_results(JOB_ID, false)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_completion(&server, JOB_ID, done(JOB_ID)).await;
    let bq = adapter(&server).await;

    let outcome = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap();

    assert_eq!(
        outcome,
        ReplaceOutcome {
            rows_deleted: Some(3),
            rows_inserted: 2,
            bytes_billed: Some(10_485_760)
        },
        "dmlStats and totalBytesBilled come from the final jobs.get"
    );
    let waits = calls(&server, &format!("{QUERIES}/{JOB_ID}")).await;
    assert_eq!(waits.len(), 2, "{waits:?}");
    for (verb, query) in &waits {
        assert_eq!(verb, "GET");
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("location").as_deref(), Some("US"));
        assert_eq!(get("maxResults").as_deref(), Some("0"));
        // settings(): request timeout 5 s, so each call asks for at most 2.5 s.
        let timeout_ms: u64 = get("timeoutMs").unwrap().parse().unwrap();
        assert!((1..=2_500).contains(&timeout_ms), "{query:?}");
    }
    let gets = calls(&server, &format!("{JOBS}/{JOB_ID}")).await;
    assert_eq!(gets.len(), 1, "one jobs.get, after completion: {gets:?}");
    assert_eq!(gets[0].1, [("location".to_owned(), "US".to_owned())]);
}

#[tokio::test]
async fn a_job_that_fails_after_acceptance_is_classified_from_its_error_result() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "PENDING")))
        .mount(&server)
        .await;
    // getQueryResults answers a failed job with the job's error, as an HTTP error.
    Mock::given(method("GET"))
        .and(path(format!("{QUERIES}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(400).set_body_string(error_body(
            400,
            "invalidQuery",
            STREAMING_BUFFER,
            "INVALID_ARGUMENT",
        )))
        .mount(&server)
        .await;
    let mut failed = job(JOB_ID, "DONE");
    failed["status"]["errorResult"] =
        json!({"reason": "invalidQuery", "location": "query", "message": STREAMING_BUFFER});
    failed["status"]["errors"] =
        json!([{"reason": "invalidQuery", "location": "query", "message": STREAMING_BUFFER}]);
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(failed))
        .expect(1)
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    let error = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap_err();

    assert_eq!(
        error,
        Error::StreamingBuffer {
            message: STREAMING_BUFFER.into()
        }
    );
}

#[tokio::test]
async fn a_transient_insert_failure_is_sent_once_and_returned_at_once() {
    let cases = [
        (503, error_body(503, "backendError", "Error encountered during execution. Retrying may solve the problem.", "UNAVAILABLE")),
        (500, error_body(500, "internalError", "An internal error occurred and the request could not be completed.", "INTERNAL")),
        (500, "{\"error\":{\"code\":500,\"message\":\"Internal error encountered.\",\"status\":\"INTERNAL\"}}".to_owned()),
        (502, "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>".to_owned()),
    ];
    for (status, body) in cases {
        let (error, sends) = refused_with(status, &body).await;
        assert_eq!(error.class(), ErrorClass::Transient, "{body}");
        assert_eq!(sends, 1, "jobs.insert is sent once per call: {body}");
        assert!(error.to_string().contains("not sent again"), "{error}");
    }
}

#[tokio::test]
async fn an_insert_that_times_out_is_not_sent_again() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(done(JOB_ID)),
        )
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.request_timeout = Duration::from_millis(500);
    let bq = BigQuery::connect(s).await.unwrap();

    let error = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap_err();

    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    assert!(error.to_string().contains("unknown"), "{error}");
    assert_eq!(inserts(&server).await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient() {
    let server = MockServer::start().await;
    let mut s = settings(&server);
    s.endpoint = "http://127.0.0.1:9".into();
    let bq = BigQuery::connect(s).await.unwrap();
    let error = bq
        .replace(&table(), &job_id(1), &[unit(1, rows())])
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
}

fn already_exists() -> ResponseTemplate {
    ResponseTemplate::new(409).set_body_string(error_body(
        409,
        "duplicate",
        &format!("Already Exists: Job {PROJECT}:US.{JOB_ID}"),
        "ALREADY_EXISTS",
    ))
}

#[tokio::test]
async fn a_duplicate_job_is_looked_up_and_waited_for_not_submitted_twice() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(already_exists())
        .expect(1)
        .mount(&server)
        .await;
    // The look-up finds the earlier send still running; waiting then finds it done.
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "RUNNING")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_completion(&server, JOB_ID, done(JOB_ID)).await;
    let bq = adapter(&server).await;

    let outcome = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap();

    assert_eq!(outcome.rows_inserted, 2);
    assert_eq!(outcome.bytes_billed, Some(10_485_760));
    assert_eq!(
        calls(&server, &format!("{QUERIES}/{JOB_ID}")).await.len(),
        1
    );
    assert_eq!(calls(&server, &format!("{JOBS}/{JOB_ID}")).await.len(), 2);
}

/// A tombstone as jobs.get shows it (settlement's `SELECT 1` under the statement's id).
pub(super) fn tombstone_job(id: &str) -> Value {
    let mut j = job(id, "DONE");
    j["configuration"] = json!({"jobType": "QUERY",
        "labels": {"app": "streamguard", "streamguard_tombstone": "true"},
        "query": {"query": "SELECT 1", "useLegacySql": false}});
    j["statistics"] = json!({"totalBytesProcessed": "0",
        "query": {"statementType": "SELECT", "totalBytesProcessed": "0", "totalBytesBilled": "0"}});
    j
}

#[tokio::test]
async fn a_statement_whose_id_holds_a_tombstone_is_refused_never_landed() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(already_exists())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{JOBS}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(tombstone_job(JOB_ID)))
        .mount(&server)
        .await;
    let bq = adapter(&server).await;

    let error = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap_err();

    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    assert!(
        error.to_string().contains("abandoned by settlement")
            && error.to_string().contains("nothing was written"),
        "{error}"
    );
}

#[test]
fn a_job_is_a_tombstone_by_its_label_or_its_query_text() {
    let reply = |v: Value| serde_json::from_value::<super::super::job::JobReply>(v).unwrap();
    assert!(reply(tombstone_job(JOB_ID)).is_tombstone());
    let mut unlabelled = tombstone_job(JOB_ID);
    unlabelled["configuration"]["labels"] = json!({"app": "streamguard"});
    assert!(
        reply(unlabelled).is_tombstone(),
        "SELECT 1 is never a statement"
    );
    let mut ours = done(JOB_ID);
    ours["configuration"]["query"]["query"] = json!("MERGE `p.d.t` AS sg_target USING …");
    assert!(!reply(ours).is_tombstone());
    assert!(
        !reply(done(JOB_ID)).is_tombstone(),
        "no text reported, no label"
    );
    assert!(!reply(job(JOB_ID, "RUNNING")).is_tombstone());
}

#[tokio::test]
async fn a_job_still_running_at_the_bound_is_cancelled_and_transient() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "RUNNING")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{QUERIES}/{JOB_ID}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(300))
                .set_body_json(query_results(JOB_ID, false)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{JOBS}/{JOB_ID}/cancel")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"kind": "bigquery#jobCancelResponse", "job": job(JOB_ID, "RUNNING")}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = settings(&server);
    s.job_timeout = Duration::from_millis(900);
    let bq = BigQuery::connect(s).await.unwrap();

    let started = std::time::Instant::now();
    let error = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap_err();

    assert_eq!(error.class(), ErrorClass::Transient);
    let text = error.to_string();
    assert!(
        text.contains("STREAMGUARD_BIGQUERY_JOB_TIMEOUT") && text.contains("outcome unknown"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(calls(&server, &format!("{QUERIES}/{JOB_ID}")).await.len() >= 2);
    assert!(calls(&server, &format!("{JOBS}/{JOB_ID}")).await.is_empty());
    assert_eq!(inserts(&server).await.len(), 1);
}

#[tokio::test]
async fn a_failed_wait_call_is_tolerated_and_the_wait_goes_on() {
    let server = MockServer::start().await;
    mount_table(&server).await;
    Mock::given(method("POST"))
        .and(path(JOBS))
        .respond_with(ResponseTemplate::new(200).set_body_json(job(JOB_ID, "RUNNING")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{QUERIES}/{JOB_ID}")))
        .respond_with(ResponseTemplate::new(503).set_body_string(error_body(
            503,
            "backendError",
            "Error encountered during execution. Retrying may solve the problem.",
            "UNAVAILABLE",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_completion(&server, JOB_ID, done(JOB_ID)).await;
    let bq = adapter(&server).await;

    let outcome = bq
        .replace(&table(), &job_id(2), &[unit(2, rows())])
        .await
        .unwrap();

    assert_eq!(outcome.rows_inserted, 2);
    assert_eq!(
        calls(&server, &format!("{QUERIES}/{JOB_ID}")).await.len(),
        2
    );
    assert_eq!(
        inserts(&server).await.len(),
        1,
        "the statement is not re-sent"
    );
}
