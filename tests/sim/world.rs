//! The simulated world: the real store (Postgres), the real emulator and two real
//! schedulers (replicas `A` and `B`) on one manual clock, driven step by step, and the
//! model the warehouse is checked against when a history ends ([`check`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use streamguard::clock::{Clock, ManualClock};
use streamguard::domain::batch::BatchLimits;
use streamguard::domain::{BatchRequest, RetryPolicy, TableRef};
use streamguard::ops::Ops;
use streamguard::scheduler::{Checkpoint, Checkpoints, Scheduler, SchedulerSettings};
use streamguard::store::{Store, StoreConfig};
use streamguard::warehouse::emulator::{BufferTime, ConflictScope, Emulator, EmulatorSettings};
use streamguard::warehouse::Warehouse;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::history::{Action, AtCheckpoint, Idempotency, RoundFault, Step, TABLES};

mod check;

/// The lease of the simulated replicas: the clock moves past it to expire a claim.
const LEASE: Duration = Duration::from_secs(30);
const REPLICAS: [&str; 2] = ["A", "B"];

/// What the checkpoints do during one round.
#[derive(Debug, Default)]
struct Hooks {
    clock: OnceLock<ManualClock>,
    /// The fault planned for the running round: taken when it fires.
    plan: Mutex<Option<(String, RoundFault)>>,
    /// How often each replica reached each checkpoint in this round.
    seen: Mutex<HashMap<(String, Checkpoint), u8>>,
    /// Cancelled when the running round's replica dies.
    kill: Mutex<CancellationToken>,
    replicas: OnceLock<[Weak<Scheduler>; 2]>,
    /// What fired, for the history's log.
    fired: Mutex<Vec<String>>,
    /// Rounds racing the running one, awaited when it ends.
    racing: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Checkpoints for Hooks {
    async fn reached(&self, replica: &str, at: Checkpoint) {
        let nth = {
            let mut seen = lock(&self.seen);
            let n = seen.entry((replica.to_owned(), at)).or_default();
            *n += 1;
            *n - 1
        };
        let fault = {
            let mut plan = lock(&self.plan);
            match &*plan {
                Some((r, f)) if r == replica && f.at == at && f.nth == nth => plan.take(),
                _ => None,
            }
        };
        let Some((_, fault)) = fault else { return };
        match fault.what {
            AtCheckpoint::Crash => {
                lock(&self.fired).push(format!("replica {replica} died at {at:?} #{nth}"));
                lock(&self.kill).cancel();
                std::future::pending::<()>().await;
            }
            AtCheckpoint::Interleave { advance } | AtCheckpoint::Race { advance } => {
                let clock = self.clock.get().expect("clock installed");
                clock.advance(Duration::from_secs(advance.into()));
                let other = usize::from(replica == REPLICAS[0]);
                let racing = matches!(fault.what, AtCheckpoint::Race { .. });
                lock(&self.fired).push(format!(
                    "replica {replica} at {at:?} #{nth}: clock +{advance}s, replica {} runs a round {}",
                    REPLICAS[other],
                    if racing { "beside it" } else { "while it waits" }
                ));
                let other = self.replicas.get().expect("replicas installed")[other]
                    .upgrade()
                    .expect("replica alive");
                if racing {
                    let handle = tokio::spawn(async move {
                        let _ = other.run_once().await;
                    });
                    lock(&self.racing).push(handle);
                } else if let Err(e) = other.run_once().await {
                    lock(&self.fired).push(format!("interleaved round failed: {e}"));
                }
            }
        }
    }
}

/// One worker's world: a pool on its own manual clock. Histories run one after another
/// in it, each in tables and a processor of its own (`h<n>`), so nothing is reset.
pub(crate) struct World {
    pub(crate) clock: ManualClock,
    store: Store,
    emulator: Arc<Emulator>,
    replicas: [Arc<Scheduler>; 2],
    ops: Ops,
    hooks: Arc<Hooks>,
}

/// What one history did and what the model expects.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// The history's namespace.
    n: u64,
    /// Per (table, k, day): every accepted version in order, `None` for a delete.
    versions: BTreeMap<(u8, u8, u8), Vec<(Uuid, Option<Vec<Value>>)>>,
    /// Posts with an idempotency key: (request, batch id).
    keyed: Vec<(BatchRequest, Uuid)>,
    /// Units an operator made due early (retry now, force): exempt from the backoff check.
    hurried: Vec<Uuid>,
    /// Streamed rows per table: (k, day) → how many.
    streamed: BTreeMap<(u8, u8, u8), usize>,
    /// What happened, step by step.
    pub(crate) log: Vec<String>,
    /// Broken promises seen while running (checked again at the end).
    pub(crate) violations: Vec<String>,
    /// What the history exercised (see [`World::tally`]).
    pub(crate) tally: BTreeMap<&'static str, i64>,
    step: usize,
}

impl Run {
    /// The history's namespace: its tables are `sim-project.sim.h<n>_t0` and `_t1`.
    pub(crate) fn namespace(&self) -> u64 {
        self.n
    }
}

impl World {
    /// The name of the world's database.
    pub(crate) fn database(&self) -> String {
        self.store
            .pool()
            .connect_options()
            .get_database()
            .unwrap_or("?")
            .to_owned()
    }

    /// A world on the database `connect`, its clock starting now.
    pub(crate) async fn new(connect: &PgConnectOptions) -> Self {
        let clock = ManualClock::starting_at(chrono::Utc::now());
        let pool: PgPool = Clock::Manual(clock.clone())
            .pool_options(PgPoolOptions::new().max_connections(8))
            .connect_with(connect.clone())
            .await
            .expect("simulation pool");
        streamguard::store::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations");
        // The simulation's own witness, in its own database only: a replica's claim must
        // never take a job that had completed (issue 10's first bug).
        sqlx::raw_sql(
            "create table if not exists sim_audit (table_ref text not null, what text not null);
             create or replace function sim_audit_jobs() returns trigger language plpgsql as $$
             begin
                 insert into sim_audit values (old.table_ref, format(
                     'job %s of unit %s had completed and was claimed again by replica %s (attempt %s)',
                     old.job_id, old.unit_id, new.locked_by, new.attempt));
                 return new;
             end $$;
             create or replace trigger sim_audit_jobs before update on jobs for each row
                 when (old.state = 'completed' and new.state = 'running' and new.locked_by in ('A', 'B'))
                 execute function sim_audit_jobs();",
        )
        .execute(&pool)
        .await
        .expect("the simulation's audit trigger");
        let policy = RetryPolicy::new(
            vec![
                Duration::from_secs(30),
                Duration::from_secs(60),
                Duration::from_secs(120),
                Duration::from_secs(300),
            ],
            40,
            0.1,
        )
        .expect("policy");
        let store = Store::new(pool.clone())
            .with_config(StoreConfig {
                retry_horizon: policy.horizon(),
                ..StoreConfig::default()
            })
            .with_clock(Clock::Manual(clock.clone()));
        let emulator = Arc::new(Emulator::new(
            pool,
            EmulatorSettings {
                buffer: BufferTime::fixed(Duration::from_secs(120)),
                conflict_scope: ConflictScope::Partition,
                ..EmulatorSettings::DEFAULT
            },
        ));
        let warehouse: Arc<dyn Warehouse> = emulator.clone();
        let hooks = Arc::new(Hooks::default());
        hooks.clock.set(clock.clone()).expect("set once");
        let settings = |replica: &str| SchedulerSettings {
            replica: replica.to_owned(),
            lease: LEASE,
            concurrency: 1,
            poll_interval: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(60),
            ..SchedulerSettings::default()
        };
        let replicas = REPLICAS.map(|r| {
            Arc::new(
                Scheduler::new(
                    store.clone(),
                    warehouse.clone(),
                    policy.clone(),
                    settings(r),
                )
                .with_checkpoints(hooks.clone()),
            )
        });
        hooks
            .replicas
            .set([Arc::downgrade(&replicas[0]), Arc::downgrade(&replicas[1])])
            .expect("set once");
        let ops = Ops::new(
            store.clone(),
            warehouse,
            BatchLimits::DEFAULT,
            policy,
            &settings("operator"),
        );
        Self {
            clock,
            store,
            emulator,
            replicas,
            ops,
            hooks,
        }
    }

    /// Closes the world's connections (its database can then be dropped).
    pub(crate) async fn close(&self) {
        self.store.pool().close().await;
    }

    /// Runs `history` as history number `n` (its namespace), drains it, and checks the
    /// model. The returned run's `violations` are empty when every promise held.
    pub(crate) async fn run(&self, n: u64, history: &[Step]) -> Run {
        let mut run = Run {
            n,
            ..Run::default()
        };
        for t in 0..TABLES {
            self.emulator
                .declare(&Self::table(&run, t), &schema())
                .await
                .expect("declare the table");
        }
        let profile = std::env::var_os("SIM_PROFILE").is_some();
        for (i, step) in history.iter().enumerate() {
            run.step = i;
            let t = std::time::Instant::now();
            self.step(&mut run, step).await;
            if profile {
                eprintln!("{:>6.1} ms  {step:?}", t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let t = std::time::Instant::now();
        self.drain(&mut run).await;
        if profile {
            eprintln!("{:>6.1} ms  drain", t.elapsed().as_secs_f64() * 1e3);
        }
        self.tally(&mut run).await;
        let t = std::time::Instant::now();
        self.check(&mut run).await;
        if profile {
            eprintln!("{:>6.1} ms  check", t.elapsed().as_secs_f64() * 1e3);
        }
        run
    }

    fn table(run: &Run, t: u8) -> TableRef {
        TableRef::parse(&format!("sim-project.sim.h{}_t{t}", run.n)).expect("table name")
    }

    fn processor(run: &Run) -> String {
        format!("sim-h{}", run.n)
    }

    async fn step(&self, run: &mut Run, step: &Step) {
        let i = run.step;
        match step {
            Step::Post {
                table,
                keys,
                idempotency,
            } => self.post(run, *table, keys, *idempotency).await,
            Step::Stream {
                table,
                day,
                residence,
            } => {
                let k = 100 + run.streamed.len() as u8;
                let row = json!({"k": k, "d": day_of(*day), "v": i, "i": 0});
                let Value::Object(row) = row else {
                    unreachable!()
                };
                let buffer = BufferTime::fixed(Duration::from_secs((*residence).into()));
                match self
                    .emulator
                    .insert_all(&Self::table(run, *table), &[row], Some(buffer))
                    .await
                {
                    Ok(_) => {
                        *run.streamed.entry((*table, k, *day)).or_default() += 1;
                        run.log
                            .push(format!("{i}: streamed key {k} into day {day}"));
                    }
                    Err(e) => run.log.push(format!("{i}: insertAll refused: {e:?}")),
                }
            }
            Step::Round { replica, fault } => self.round(run, usize::from(*replica), *fault).await,
            Step::Together {
                replica,
                fault,
                with,
            } => {
                let ((log, violations), ()) = tokio::join!(
                    self.round_alone(i, usize::from(*replica), *fault),
                    Box::pin(self.step(run, with)),
                );
                run.log.extend(log);
                run.violations.extend(violations);
            }
            Step::Advance { seconds } => {
                self.clock.advance(Duration::from_secs((*seconds).into()));
            }
            Step::Operator { action, pick } => self.operator(run, *action, *pick).await,
            Step::Faults { table, faults } => {
                let parsed = faults
                    .as_deref()
                    .map(|f| f.parse().expect("generated spec"));
                self.emulator.set_faults(&Self::table(run, *table), parsed);
            }
            Step::Flush { table } => {
                let flushed = self
                    .emulator
                    .flush(&Self::table(run, *table))
                    .await
                    .expect("flush");
                run.log.push(format!("{i}: flushed {flushed} row(s)"));
            }
        }
    }

    async fn post(&self, run: &mut Run, table: u8, keys: &[(u8, u8, u8)], idem: Idempotency) {
        let i = run.step;
        let mut rows = Vec::new();
        let mut delete_keys = Vec::new();
        for &(k, day, n) in keys {
            if n == 0 {
                delete_keys.push(json!({"k": k, "d": day_of(day)}));
            }
            for r in 0..n {
                rows.push(json!({"k": k, "d": day_of(day), "v": i, "i": r}));
            }
        }
        let fresh_key = format!("h{}-post-{i}", run.n);
        let (idempotency_key, expect) = match idem {
            Idempotency::None => (None, Expect::Accepted),
            Idempotency::Fresh => (Some(fresh_key), Expect::Accepted),
            Idempotency::Repeat(n) | Idempotency::Conflicting(n) if run.keyed.is_empty() => {
                let _ = n;
                (Some(fresh_key), Expect::Accepted)
            }
            Idempotency::Repeat(n) => {
                let (request, batch) = run.keyed[usize::from(n) % run.keyed.len()].clone();
                return self.repost(run, &request, batch).await;
            }
            Idempotency::Conflicting(n) => {
                let (request, batch) = &run.keyed[usize::from(n) % run.keyed.len()];
                (request.idempotency_key.clone(), Expect::Refused(*batch))
            }
        };
        let request: BatchRequest = serde_json::from_value(json!({
            "processor_name": Self::processor(run),
            "table": Self::table(run, table).to_string(),
            "key_columns": ["k"],
            "partition_column": "d",
            "rows": rows,
            "delete_keys": delete_keys,
            "idempotency_key": idempotency_key,
        }))
        .expect("batch request");
        let answer = self.ops.submit(&request).await;
        match (expect, answer) {
            (Expect::Accepted, Ok(s)) => {
                let batch = s.intake.batch_id;
                run.log.push(format!("{i}: batch {batch} accepted ({} units)", s.units));
                for &(k, day, n) in keys {
                    let rows = (n > 0).then(|| {
                        (0..n)
                            .map(|r| json!({"k": k, "d": day_of(day), "v": i, "i": r}))
                            .collect()
                    });
                    run.versions
                        .entry((table, k, day))
                        .or_default()
                        .push((batch, rows));
                }
                if request.idempotency_key.is_some() {
                    run.keyed.push((request, batch));
                }
            }
            (Expect::Accepted, Err(e)) => run
                .violations
                .push(format!("step {i}: a valid batch was refused: {e}")),
            (Expect::Refused(_), Err(streamguard::ops::Error::Store(
                streamguard::store::Error::IdempotencyMismatch { .. },
            ))) => run.log.push(format!("{i}: conflicting re-post refused")),
            (Expect::Refused(original), answer) => run.violations.push(format!(
                "step {i}: a re-post of batch {original}'s idempotency key with other rows was not refused as a mismatch: {answer:?}"
            )),
        }
    }

    async fn repost(&self, run: &mut Run, request: &BatchRequest, batch: Uuid) {
        let i = run.step;
        match self.ops.submit(request).await {
            Ok(s) if s.intake.batch_id == batch && s.intake.replayed => run
                .log
                .push(format!("{i}: re-post answered as batch {batch}")),
            other => run.violations.push(format!(
                "step {i}: an identical re-post of batch {batch} was not a replay: {other:?}"
            )),
        }
    }

    async fn round(&self, run: &mut Run, replica: usize, fault: Option<RoundFault>) {
        let (log, violations) = self.round_alone(run.step, replica, fault).await;
        run.log.extend(log);
        run.violations.extend(violations);
    }

    /// Runs a round of `replica`; returns its log lines and broken promises.
    async fn round_alone(
        &self,
        i: usize,
        replica: usize,
        fault: Option<RoundFault>,
    ) -> (Vec<String>, Vec<String>) {
        let name = REPLICAS[replica];
        *lock(&self.hooks.plan) = fault.map(|f| (name.to_owned(), f));
        lock(&self.hooks.seen).clear();
        let kill = CancellationToken::new();
        *lock(&self.hooks.kill) = kill.clone();
        let outcome = tokio::select! {
            () = kill.cancelled() => Ok(None),
            claimed = self.replicas[replica].run_once() => claimed.map(Some),
        };
        *lock(&self.hooks.plan) = None;
        let racing: Vec<_> = lock(&self.hooks.racing).drain(..).collect();
        for handle in racing {
            handle.await.expect("a racing round panicked");
        }
        let mut log: Vec<String> = lock(&self.hooks.fired)
            .drain(..)
            .map(|f| format!("{i}: {f}"))
            .collect();
        let mut violations = Vec::new();
        match outcome {
            Ok(Some(n)) => log.push(format!("{i}: replica {name} ran a round of {n} job(s)")),
            Ok(None) => {}
            Err(e) => violations.push(format!("step {i}: replica {name}'s claim failed: {e}")),
        }
        (log, violations)
    }

    async fn operator(&self, run: &mut Run, action: Action, pick: u16) {
        let i = run.step;
        let like = format!("sim-project.sim.h{}\\_t%", run.n);
        let target: Option<Uuid> = if action == Action::Cancel {
            sqlx::query_scalar(
                "select unit_id from write_units where table_ref like $1
                   and state in ('pending', 'deferred') order by seq offset $2 limit 1",
            )
        } else {
            sqlx::query_scalar(
                "select c.conflict_id from conflicts c join write_units w using (unit_id)
                 where c.table_ref like $1 and not c.resolved order by w.seq offset $2 limit 1",
            )
        }
        .bind(&like)
        .bind(i64::from(pick))
        .fetch_optional(self.store.pool())
        .await
        .expect("operator's pick");
        let Some(target) = target else { return };
        let answer = match action {
            Action::RetryNow => self
                .ops
                .retry_now(target, false, "sim", None)
                .await
                .map(|r| format!("{r:?}")),
            Action::RetryIgnoringBreaker => self
                .ops
                .retry_now(target, true, "sim", Some("simulated operator"))
                .await
                .map(|r| format!("{r:?}")),
            Action::Resolve => self
                .ops
                .resolve(target, "manual", "simulated operator", "sim")
                .await
                .map(|r| format!("{r:?}")),
            Action::Force => self
                .ops
                .force(target, "sim", "simulated operator", false)
                .await
                .map(|r| format!("{r:?}")),
            Action::Cancel => self
                .ops
                .cancel(target, "sim", "simulated operator")
                .await
                .map(|r| format!("{r:?}")),
        };
        if answer.is_ok()
            && matches!(
                action,
                Action::RetryNow | Action::RetryIgnoringBreaker | Action::Force
            )
        {
            let unit: Option<Uuid> =
                sqlx::query_scalar("select unit_id from conflicts where conflict_id = $1")
                    .bind(target)
                    .fetch_one(self.store.pool())
                    .await
                    .expect("the conflict's unit");
            run.hurried.extend(unit);
        }
        run.log.push(match answer {
            Ok(a) => format!("{i}: operator {action:?} on {target}: {a}"),
            Err(e) => format!("{i}: operator {action:?} on {target} refused: {e}"),
        });
    }

    /// Lets the history end: faults stop, and replica `A` runs rounds while the clock
    /// moves on, until every unit has ended (or the budget runs out: a stuck unit).
    async fn drain(&self, run: &mut Run) {
        for t in 0..TABLES {
            self.emulator.set_faults(&Self::table(run, t), None);
        }
        run.step = usize::MAX;
        for _ in 0..200 {
            loop {
                *lock(&self.hooks.plan) = None;
                match self.replicas[0].run_once().await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        run.violations.push(format!("drain: claim failed: {e}"));
                        return;
                    }
                }
            }
            // Nothing is due: jump to when something is (a retry, a lease, a hold, a
            // table's pace), as a discrete-event simulation does.
            let (open, next): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
                "select (select count(*) from write_units where table_ref like $1
                           and state not in ('loaded', 'superseded', 'cancelled', 'failed')),
                        (select min(at) from (
                            select case when state = 'running' then lease_expires_at else run_at end
                              from jobs where table_ref like $1 and state <> 'completed'
                            union all
                            select until from partition_holds where table_ref like $1
                            union all
                            select next_at from table_pacing where table_ref like $1) e(at)
                          where at > $2)",
            )
            .bind(format!("sim-project.sim.h{}\\_t%", run.n))
            .bind(self.clock.now())
            .fetch_one(self.store.pool())
            .await
            .expect("open units");
            if open == 0 {
                return;
            }
            let now = self.clock.now();
            let wait = next
                .and_then(|at| (at - now).to_std().ok())
                .unwrap_or(Duration::from_secs(60))
                .clamp(Duration::from_millis(1), Duration::from_secs(600));
            self.clock.advance(wait);
        }
    }
}

enum Expect {
    Accepted,
    Refused(Uuid),
}

/// The simulated tables' schema, in BigQuery's `tables.insert` form: key `k`, partition
/// `d` (by day), the batch's step `v`, the row's index `i`.
fn schema() -> streamguard::domain::TableSchema {
    serde_json::from_value(json!({
        "schema": {"fields": [
            {"name": "k", "type": "INT64", "mode": "REQUIRED"},
            {"name": "d", "type": "DATE", "mode": "REQUIRED"},
            {"name": "v", "type": "INT64"},
            {"name": "i", "type": "INT64"}
        ]},
        "timePartitioning": {"type": "DAY", "field": "d"}
    }))
    .expect("schema")
}

fn day_of(day: u8) -> String {
    format!("2026-01-{:02}", day + 1)
}
