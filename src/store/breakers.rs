//! Breaker persistence: the [`crate::domain::breaker`] state machine over the `breakers`
//! table, shared by every replica.
//!
//! Each transition is one statement: a compare-and-swap `update … where scope = $1 and
//! version = $2` inside a CTE that also appends the `breaker_transitions` row. Two replicas
//! deciding at once cannot both win; the loser re-reads and decides again — so exactly one
//! job takes the half-open permit. Times come from the shared clock (`streamguard_clock()`, [`crate::clock`]), so
//! replicas with skewed clocks still agree on when an open period ends. Whether the probe
//! is alive is read from the `jobs` table: the permit counts only while the probe's job
//! attempt holds an unexpired lease.
//!
//! Why it is long (about 470 lines): each breaker transition is one compare-and-swap
//! statement, kept beside the reads that feed it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{alerts, Error, Store};
use crate::domain::breaker::{
    self, Admission, Breaker, BreakerState, OperatorAction, Outcome, Probe, Transition, Window,
};

/// Who the scheduler's own transitions are recorded as.
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// How many times a compare-and-swap is retried before giving up (each retry means another
/// replica changed the breaker in between; this bound is never reached in practice).
const CAS_TRIES: usize = 16;

/// One breaker as `GET /v1/breakers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// The scope: a processor name, or a table (`STREAMGUARD_BREAKER_SCOPE`).
    pub scope: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub state: BreakerState,
    /// Outcomes in the current window (landed + conflicts) and conflicts among them.
    pub window: Window,
    /// `window.conflicts / window.outcomes` (0 for an empty window), a fraction.
    pub conflict_rate: f64,
    /// When it last opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When an open breaker lets its probe through.
    pub reopens_at: Option<DateTime<Utc>>,
    /// Failed probes since it last closed.
    pub reopens: u32,
    /// Times it opened in all (automatic trips and re-opens after a failed probe).
    pub trips: i32,
    /// The half-open probe in flight, if any.
    pub probe: Option<Probe>,
    /// Whether a processor writing on its own may write now (see
    /// [`crate::domain::breaker::allows_writes`]): closed or disabled, or the open period
    /// is over and no probe is in flight (its write is then the probe).
    pub allows_writes: bool,
    /// Why it last changed state.
    pub last_reason: Option<String>,
    /// Who changed it: `scheduler`, or the operator's actor name.
    pub last_actor: Option<String>,
    /// When it last changed state.
    pub last_transition_at: Option<DateTime<Utc>>,
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TransitionRow {
    /// From this state.
    pub from_state: String,
    /// To this state.
    pub to_state: String,
    /// Why.
    pub reason: String,
    /// Who: `scheduler` or an operator.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    scope: String,
    state: String,
    version: i64,
    opened_at: Option<DateTime<Utc>>,
    reopens_at: Option<DateTime<Utc>>,
    reopens: i32,
    counting_since: Option<DateTime<Utc>>,
    probe_job_id: Option<i64>,
    probe_attempt: Option<i32>,
    trips: i32,
    last_reason: Option<String>,
    last_actor: Option<String>,
    last_transition_at: Option<DateTime<Utc>>,
    probe_alive: bool,
    db_now: DateTime<Utc>,
}

impl Row {
    fn breaker(&self) -> Breaker {
        Breaker {
            state: BreakerState::parse(&self.state).unwrap_or(BreakerState::Closed),
            opened_at: self.opened_at,
            reopens_at: self.reopens_at,
            reopens: u32::try_from(self.reopens).unwrap_or(0),
            counting_since: self.counting_since,
            probe: match (self.probe_job_id, self.probe_attempt) {
                (Some(job_id), Some(attempt)) => Some(Probe { job_id, attempt }),
                _ => None,
            },
        }
    }
}

/// The breaker row, with whether its probe still holds its lease and the database's clock.
const SELECT_ONE: &str =
    "select b.scope, b.state, b.version, b.opened_at, b.reopens_at, b.reopens, b.counting_since,
        b.probe_job_id, b.probe_attempt, b.trips, b.last_reason, b.last_actor, b.last_transition_at,
        exists (select 1 from jobs j where j.job_id = b.probe_job_id and j.attempt = b.probe_attempt
                and j.state = 'running' and j.lease_expires_at > streamguard_clock()) as probe_alive,
        streamguard_clock() as db_now
     from breakers b where b.scope = $1";

/// Every breaker row, as [`SELECT_ONE`].
const SELECT_ALL: &str =
    "select b.scope, b.state, b.version, b.opened_at, b.reopens_at, b.reopens, b.counting_since,
        b.probe_job_id, b.probe_attempt, b.trips, b.last_reason, b.last_actor, b.last_transition_at,
        exists (select 1 from jobs j where j.job_id = b.probe_job_id and j.attempt = b.probe_attempt
                and j.state = 'running' and j.lease_expires_at > streamguard_clock()) as probe_alive,
        streamguard_clock() as db_now
     from breakers b order by b.scope";

async fn read(conn: &mut sqlx::PgConnection, scope: &str) -> Result<Option<Row>, Error> {
    Ok(sqlx::query_as(SELECT_ONE)
        .bind(scope)
        .fetch_optional(conn)
        .await?)
}

async fn ensure(conn: &mut sqlx::PgConnection, scope: &str) -> Result<(), Error> {
    sqlx::query("insert into breakers (scope) values ($1) on conflict (scope) do nothing")
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(())
}

/// The window's counts: the last `window_outcomes` outcomes of the scope, no older than
/// the window and not before `counting_since`.
async fn window(
    conn: &mut sqlx::PgConnection,
    store: &Store,
    scope: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Window, Error> {
    let s = &store.config.breaker;
    let (outcomes, conflicts): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where conflict) from (
             select conflict from breaker_outcomes
             where scope = $1 and created_at >= streamguard_clock() - make_interval(secs => $2)
               and ($3::timestamptz is null or created_at >= $3)
             order by outcome_id desc limit $4) w",
    )
    .bind(scope)
    .bind(s.window.as_secs_f64())
    .bind(since)
    .bind(i64::from(s.window_outcomes))
    .fetch_one(conn)
    .await?;
    Ok(Window {
        outcomes: u32::try_from(outcomes).unwrap_or(u32::MAX),
        conflicts: u32::try_from(conflicts).unwrap_or(u32::MAX),
    })
}

/// Applies `t` if the breaker is still at `version`; `false` when another replica moved it
/// first. One statement: the update and its transition row.
async fn swap(
    conn: &mut sqlx::PgConnection,
    row: &Row,
    t: &Transition,
    actor: &str,
) -> Result<bool, Error> {
    let opens = t.to.state == BreakerState::Open;
    let swapped: Option<i64> = sqlx::query_scalar(
        "with moved as (
             update breakers set state = $3, version = version + 1, opened_at = $4, reopens_at = $5,
                    reopens = $6, counting_since = $7, probe_job_id = $8, probe_attempt = $9,
                    trips = trips + $10, last_reason = $11, last_actor = $12,
                    last_transition_at = streamguard_clock(), updated_at = streamguard_now()
             where scope = $1 and version = $2
             returning scope)
         insert into breaker_transitions (scope, from_state, to_state, reason, actor)
         select scope, $13, $3, $11, $12 from moved
         returning transition_id",
    )
    .bind(&row.scope)
    .bind(row.version)
    .bind(t.to.state.as_str())
    .bind(t.to.opened_at)
    .bind(t.to.reopens_at)
    .bind(i32::try_from(t.to.reopens).unwrap_or(i32::MAX))
    .bind(t.to.counting_since)
    .bind(t.to.probe.map(|p| p.job_id))
    .bind(t.to.probe.map(|p| p.attempt))
    .bind(i32::from(opens))
    .bind(&t.reason)
    .bind(actor)
    .bind(&row.state)
    .fetch_optional(conn)
    .await?;
    Ok(swapped.is_some())
}

/// Writes the alert for a transition that opens or closes the breaker (same transaction).
async fn alert_on(
    conn: &mut sqlx::PgConnection,
    store: &Store,
    row: &Row,
    t: &Transition,
    actor: &str,
    window: Window,
) -> Result<(), Error> {
    let from = row.breaker().state;
    let kind = match (from.is_open() || from == BreakerState::HalfOpen, t.to.state) {
        (false, BreakerState::Open | BreakerState::ForcedOpen) => "breaker_opened",
        (true, BreakerState::Open) if from == BreakerState::HalfOpen => "breaker_opened",
        (true, BreakerState::Closed | BreakerState::Disabled) => "breaker_closed",
        _ => return Ok(()),
    };
    let summary = match kind {
        "breaker_opened" => format!(
            "circuit breaker for {} opened: {}{}",
            row.scope,
            t.reason,
            t.to.reopens_at
                .map(|at| format!("; probing again at {}", at.to_rfc3339()))
                .unwrap_or_default()
        ),
        _ => format!("circuit breaker for {} closed: {}", row.scope, t.reason),
    };
    alerts::insert(
        conn,
        store,
        kind,
        &row.scope,
        &summary,
        json!({
            "scope": row.scope,
            "from": from,
            "to": t.to.state,
            "reason": t.reason,
            "actor": actor,
            "opened_at": t.to.opened_at,
            "reopens_at": t.to.reopens_at,
            "window": window,
            "conflict_rate": window.conflict_rate(),
        }),
    )
    .await?;
    Ok(())
}

impl Store {
    /// May the claimed job `candidate` of `scope` run now? Takes the half-open permit when
    /// it is free (or its holder's lease expired). Not in a transaction: the permit is one
    /// compare-and-swap statement.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn admit(&self, scope: &str, candidate: Probe) -> Result<Admission, Error> {
        let mut conn = self.pool.acquire().await?;
        for _ in 0..CAS_TRIES {
            let Some(row) = read(&mut conn, scope).await? else {
                return Ok(Admission::Run);
            };
            let (admission, t) = breaker::admit(
                &row.breaker(),
                &self.config.breaker,
                row.db_now,
                candidate,
                row.probe_alive,
            );
            match t {
                None => return Ok(admission),
                Some(t) => {
                    if swap(&mut conn, &row, &t, SCHEDULER_ACTOR).await? {
                        tracing::info!(scope, job_id = candidate.job_id, reason = %t.reason, "breaker half-open: probe admitted");
                        return Ok(admission);
                    }
                }
            }
        }
        Err(Error::Contention(format!("breaker {scope}")))
    }

    /// Counts an outcome for `scope` and applies the transition it causes, inside the
    /// caller's transaction (the verdict's). Opening and closing write an alert.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::Contention`].
    pub(crate) async fn count_outcome(
        &self,
        conn: &mut sqlx::PgConnection,
        scope: &str,
        outcome: Outcome,
        from: Probe,
        source: &str,
    ) -> Result<(), Error> {
        ensure(conn, scope).await?;
        sqlx::query("insert into breaker_outcomes (scope, conflict, source) values ($1, $2, $3)")
            .bind(scope)
            .bind(outcome == Outcome::Conflict)
            .bind(source)
            .execute(&mut *conn)
            .await?;
        for _ in 0..CAS_TRIES {
            let row = read(conn, scope).await?.expect("ensured above");
            let b = row.breaker();
            let w = window(conn, self, scope, b.counting_since).await?;
            let Some(t) = breaker::record(&b, &self.config.breaker, row.db_now, outcome, w, from)
            else {
                return Ok(());
            };
            if swap(conn, &row, &t, SCHEDULER_ACTOR).await? {
                tracing::warn!(scope, to = t.to.state.as_str(), reason = %t.reason, "breaker transition");
                return alert_on(conn, self, &row, &t, SCHEDULER_ACTOR, w).await;
            }
        }
        Err(Error::Contention(format!("breaker {scope}")))
    }

    /// Releases the half-open permit held by `from` when its attempt ended without an
    /// outcome (transient or permanent error). Inside the caller's transaction.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::Contention`].
    pub(crate) async fn release_probe(
        &self,
        conn: &mut sqlx::PgConnection,
        scope: &str,
        from: Probe,
    ) -> Result<(), Error> {
        for _ in 0..CAS_TRIES {
            let Some(row) = read(conn, scope).await? else {
                return Ok(());
            };
            let Some(t) = breaker::release_probe(&row.breaker(), from) else {
                return Ok(());
            };
            if swap(conn, &row, &t, SCHEDULER_ACTOR).await? {
                return Ok(());
            }
        }
        Err(Error::Contention(format!("breaker {scope}")))
    }

    /// An operator's reset, force-open or disable, recorded with `actor` and `reason`, with
    /// its alert, in one transaction. Creates the breaker if the scope has none yet.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::Contention`].
    pub async fn operate_breaker(
        &self,
        scope: &str,
        action: OperatorAction,
        reason: &str,
        actor: &str,
    ) -> Result<BreakerView, Error> {
        let mut tx = self.pool.begin().await?;
        ensure(&mut tx, scope).await?;
        let mut done = false;
        for _ in 0..CAS_TRIES {
            let row = read(&mut tx, scope).await?.expect("ensured above");
            let t = breaker::operate(&row.breaker(), row.db_now, action, reason);
            if swap(&mut tx, &row, &t, actor).await? {
                let w = window(&mut tx, self, scope, t.to.counting_since).await?;
                alert_on(&mut tx, self, &row, &t, actor, w).await?;
                done = true;
                break;
            }
        }
        if !done {
            return Err(Error::Contention(format!("breaker {scope}")));
        }
        tx.commit().await?;
        tracing::warn!(
            scope,
            action = action.as_str(),
            actor,
            reason,
            "breaker changed by operator"
        );
        Ok(self.breaker(scope).await?.expect("ensured above").0)
    }

    /// Every breaker, by scope.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn breakers(&self) -> Result<Vec<BreakerView>, Error> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<Row> = sqlx::query_as(SELECT_ALL).fetch_all(&mut *conn).await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.view(&mut conn, row).await?);
        }
        Ok(views)
    }

    /// One breaker with its last 20 transitions (newest first); `None` when the scope has
    /// none yet (nothing counted, no operator action) — it is then closed.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn breaker(
        &self,
        scope: &str,
    ) -> Result<Option<(BreakerView, Vec<TransitionRow>)>, Error> {
        let mut conn = self.pool.acquire().await?;
        let Some(row) = read(&mut conn, scope).await? else {
            return Ok(None);
        };
        let view = self.view(&mut conn, row).await?;
        let transitions = sqlx::query_as(
            "select from_state, to_state, reason, actor, created_at from breaker_transitions
             where scope = $1 order by transition_id desc limit 20",
        )
        .bind(scope)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some((view, transitions)))
    }

    /// Trips per scope since `since` (the demo's final table and the daily digest).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn breaker_trips_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, Error> {
        Ok(sqlx::query_as(
            "select scope, count(*) from breaker_transitions
             where to_state in ('open', 'forced_open') and created_at >= $1 group by scope order by scope",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn view(&self, conn: &mut sqlx::PgConnection, row: Row) -> Result<BreakerView, Error> {
        let b = row.breaker();
        let w = window(conn, self, &row.scope, b.counting_since).await?;
        Ok(BreakerView {
            scope: row.scope,
            state: b.state,
            window: w,
            conflict_rate: w.conflict_rate(),
            opened_at: b.opened_at,
            reopens_at: b.reopens_at,
            reopens: b.reopens,
            trips: row.trips,
            probe: b.probe.filter(|_| row.probe_alive),
            allows_writes: breaker::allows_writes(&b, row.db_now, row.probe_alive),
            last_reason: row.last_reason,
            last_actor: row.last_actor,
            last_transition_at: row.last_transition_at,
        })
    }
}
