//! The end of a history: what it exercised, and whether every promise held.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{day_of, Run, World};
use crate::history::TABLES;

/// What [`World::tally`] counts from the store, by name.
const TALLIED: [&str; 11] = [
    "units",
    "units superseded",
    "units cancelled",
    "pure deletes",
    "conflicts",
    "statements",
    "statements refused",
    "lost attempts (leases expired)",
    "landings adopted",
    "partitions held",
    "breaker trips",
];

impl World {
    /// Counts what the history exercised, so a run can show that its histories reach the
    /// paths that matter (crashes, races, conflicts, trips, adoptions).
    pub(super) async fn tally(&self, run: &mut Run) {
        let like = format!("sim-project.sim.h{}\\_t%", run.n);
        let processor = Self::processor(run);
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "select 'units', count(*) from write_units where table_ref like $1
             union all select 'units superseded', count(*) from write_units where table_ref like $1 and state = 'superseded'
             union all select 'units cancelled', count(*) from write_units where table_ref like $1 and state = 'cancelled'
             union all select 'pure deletes', count(*) from write_units where table_ref like $1 and row_count = 0
             union all select 'conflicts', count(*) from conflicts where table_ref like $1
             union all select 'statements', count(*) from statements where table_ref like $1
             union all select 'statements refused', count(*) from statements where table_ref like $1 and state = 'failed'
             union all select 'lost attempts (leases expired)', count(*) from attempts a join write_units w using (unit_id)
                 where w.table_ref like $1 and a.outcome = 'lost'
             union all select 'landings adopted', count(*) from attempts a join write_units w using (unit_id)
                 join statements s on s.statement_id = a.statement_id
                 where w.table_ref like $1 and a.outcome = 'loaded' and s.replica <> a.replica
             union all select 'partitions held', count(*) from partition_holds where table_ref like $1
             union all select 'breaker trips', count(*) from breaker_transitions
                 where scope = $2 and to_state = 'open'",
        )
        .bind(&like)
        .bind(&processor)
        .fetch_all(self.store.pool())
        .await
        .expect("tally");
        for (what, n) in counts {
            let key = TALLIED
                .iter()
                .find(|k| **k == what)
                .expect("a tallied name");
            *run.tally.entry(key).or_default() += n;
        }
        for (needle, key) in [
            ("died at", "replicas killed"),
            ("while it waits", "rounds interleaved"),
            ("beside it", "rounds raced"),
            ("refused", "operator actions refused"),
        ] {
            let n = run.log.iter().filter(|l| l.contains(needle)).count();
            *run.tally.entry(key).or_default() += n as i64;
        }
    }

    /// Checks the model against the warehouse and the store.
    pub(super) async fn check(&self, run: &mut Run) {
        let pool = self.store.pool();
        let like = format!("sim-project.sim.h{}\\_t%", run.n);
        // Every unit ended, and not by giving up (nothing here is refused for good).
        let open: Vec<(String, Value, Option<Value>, String, Option<String>)> = sqlx::query_as(
            "select table_ref, key, partition_value, state, error from write_units
             where table_ref like $1 and state not in ('loaded', 'superseded', 'cancelled')
             order by seq",
        )
        .bind(&like)
        .fetch_all(pool)
        .await
        .expect("units");
        for (table, key, partition, state, error) in open {
            run.violations.push(format!(
                "unit {table} {key} {partition:?} ended the history {state} ({error:?})"
            ));
        }
        // The warehouse holds, per key, the newest accepted batch's rows (none after a
        // delete) — or, when the newest was cancelled by an operator, the rows of the
        // newest that landed.
        let states: Vec<(Uuid, Value, Option<Value>, String)> = sqlx::query_as(
            "select batch_id, key, partition_value, state from write_units where table_ref like $1",
        )
        .bind(&like)
        .fetch_all(pool)
        .await
        .expect("unit states");
        let state_of = |batch: Uuid, k: u8, day: u8| {
            states
                .iter()
                .find(|(b, key, p, _)| {
                    *b == batch
                        && key.get("k") == Some(&json!(k))
                        && p.as_ref() == Some(&json!(day_of(day)))
                })
                .map(|s| s.3.clone())
        };
        let mut tables: BTreeMap<u8, Vec<Map<String, Value>>> = BTreeMap::new();
        for t in 0..TABLES {
            let rows = self
                .emulator
                .rows(&Self::table(run, t))
                .await
                .expect("warehouse rows");
            tables.insert(
                t,
                rows.into_iter()
                    .filter_map(|r| match r.data {
                        Value::Object(o) => Some(o),
                        _ => None,
                    })
                    .collect(),
            );
        }
        let rows_of = |t: u8, k: u8, day: u8| -> Vec<String> {
            let mut rows: Vec<String> = tables[&t]
                .iter()
                .filter(|r| {
                    r.get("k") == Some(&json!(k)) && r.get("d") == Some(&json!(day_of(day)))
                })
                .map(|r| Value::Object(r.clone()).to_string())
                .collect();
            rows.sort();
            rows
        };
        let sorted = |rows: &Option<Vec<Value>>| -> Vec<String> {
            let mut rows: Vec<String> = rows
                .iter()
                .flatten()
                .map(|r| {
                    // As stored: the emulator keeps the columns it was given.
                    r.to_string()
                })
                .collect();
            rows.sort();
            rows
        };
        for (&(t, k, day), versions) in &run.versions {
            let actual = rows_of(t, k, day);
            let loaded: Vec<&(Uuid, Option<Vec<Value>>)> = versions
                .iter()
                .filter(|(b, _)| state_of(*b, k, day).as_deref() == Some("loaded"))
                .collect();
            let (newest, rows) = versions.last().expect("at least one version");
            let newest_state = state_of(*newest, k, day);
            let expected = match newest_state.as_deref() {
                Some("loaded") => sorted(rows),
                Some("cancelled") => loaded.last().map(|(_, r)| sorted(r)).unwrap_or_default(),
                other => {
                    run.violations.push(format!(
                        "table t{t} key {k} day {day}: the newest batch {newest} ended {other:?}, not loaded or cancelled"
                    ));
                    continue;
                }
            };
            if actual != expected {
                run.violations.push(format!(
                    "table t{t} key {k} day {day}: the warehouse holds {actual:?}, the model {expected:?} (newest batch {newest}, {newest_state:?})"
                ));
            }
        }
        for (&(t, k, day), &n) in &run.streamed {
            let actual = rows_of(t, k, day).len();
            if actual != n {
                run.violations.push(format!(
                    "table t{t}: streamed key {k} day {day} has {actual} row(s), {n} were streamed"
                ));
            }
        }
        // Every conflict ended.
        let open: Vec<(Uuid, String)> = sqlx::query_as(
            "select conflict_id, conflict_type from conflicts where table_ref like $1 and not resolved",
        )
        .bind(&like)
        .fetch_all(pool)
        .await
        .expect("conflicts");
        for (id, kind) in open {
            run.violations.push(format!(
                "conflict {id} ({kind}) is still open though every unit ended"
            ));
        }
        // Every attempt is one the history made: by a replica or an operator, and a
        // `loaded` one by a statement the warehouse really landed.
        let strays: Vec<(Uuid, i32, String, String)> = sqlx::query_as(
            "select a.unit_id, a.attempt, a.outcome, a.replica from attempts a
               join write_units w using (unit_id)
               left join statements s on s.statement_id = a.statement_id
               left join emulator.jobs e on e.job_id = s.job_id
             where w.table_ref like $1
               and (a.replica not in ('A', 'B', 'operator')
                    or (a.outcome = 'loaded' and (s.statement_id is null or e.state is distinct from 'done')))",
        )
        .bind(&like)
        .fetch_all(pool)
        .await
        .expect("attempts");
        for (unit, attempt, outcome, replica) in strays {
            run.violations.push(format!(
                "attempt {attempt} of unit {unit} ({outcome} by {replica}) is not one the warehouse or the history knows"
            ));
        }
        let claimed_again: Vec<String> =
            sqlx::query_scalar("select what from sim_audit where table_ref like $1")
                .bind(&like)
                .fetch_all(pool)
                .await
                .expect("audit");
        run.violations.extend(claimed_again);
        // Exactly once: a loaded unit was landed by one statement; any other by at most one
        // (one that landed before its unit was superseded or cancelled).
        let landed: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "select w.unit_id, w.state, count(e.job_id) from write_units w
               left join statement_units su using (unit_id)
               left join statements s on s.statement_id = su.statement_id
               left join emulator.jobs e on e.job_id = s.job_id and e.state = 'done'
             where w.table_ref like $1 group by w.unit_id, w.state
             having count(e.job_id) > 1 or (w.state = 'loaded' and count(e.job_id) = 0)",
        )
        .bind(&like)
        .fetch_all(pool)
        .await
        .expect("landings");
        for (unit, state, n) in landed {
            run.violations.push(format!(
                "unit {unit} ({state}) was landed by {n} statement(s)"
            ));
        }
        // No retry before its backoff: an attempt that chose a delay is followed by the
        // next one no sooner (an operator's retry or force excepted).
        let early: Vec<(Uuid, i32, i32, f64)> = sqlx::query_as(
            "select a.unit_id, a.attempt, a.delay_seconds,
                    extract(epoch from (b.started_at - a.finished_at))::float8
             from attempts a join attempts b on b.unit_id = a.unit_id and b.attempt = a.attempt + 1
               join write_units w on w.unit_id = a.unit_id
             where w.table_ref like $1 and a.delay_seconds is not null
               and b.started_at < a.finished_at + make_interval(secs => a.delay_seconds - 1)
               and not (a.unit_id = any($2))",
        )
        .bind(&like)
        .bind(&run.hurried)
        .fetch_all(pool)
        .await
        .expect("backoffs");
        for (unit, attempt, delay, waited) in early {
            run.violations.push(format!(
                "unit {unit}: attempt {} came {waited:.1} s after attempt {attempt}, whose backoff was {delay} s",
                attempt + 1
            ));
        }
    }
}
