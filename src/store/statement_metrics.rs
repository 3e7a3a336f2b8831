//! The statement counters `/metrics` exports: statements by table and outcome, unit
//! outcomes, bytes billed by table, and units per statement as a histogram. Counted from
//! the `statements` and `attempts` tables at scrape time, so every replica reports the same
//! monotonic totals (rows are never deleted).

use super::{Error, Store};

/// Upper bounds of the units-per-statement histogram's buckets.
pub const UNITS_PER_STATEMENT_BUCKETS: [i64; 9] = [1, 2, 5, 10, 50, 100, 500, 1_000, 2_000];

/// Totals since the database was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementTotals {
    /// `(table, outcome, statements)`: `outcome` is `loaded` or the refusal's error class
    /// (`unknown` for a statement whose fate was never learnt); statements still in flight
    /// are not counted.
    pub statements: Vec<(String, String, i64)>,
    /// `(outcome, attempts)`: unit attempts by outcome (`loaded`, `conflict`, `transient`,
    /// `failed`, `superseded`, `lost`).
    pub unit_outcomes: Vec<(String, i64)>,
    /// `(table, bytes)`: bytes billed, where the warehouse reported them.
    pub bytes_billed: Vec<(String, i64)>,
    /// Cumulative statement counts for each bound of [`UNITS_PER_STATEMENT_BUCKETS`].
    pub units_per_statement: Vec<i64>,
    /// Statements in all, and units carried in all (the histogram's `_count` and `_sum`).
    pub statements_count: i64,
    /// Units carried by all statements.
    pub units_sum: i64,
}

impl Store {
    /// The statement counters now.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn statement_totals(&self) -> Result<StatementTotals, Error> {
        let statements = sqlx::query_as(
            "select table_ref,
                    case when state = 'done' then 'loaded' else coalesce(error_class, 'unknown') end as outcome,
                    count(*)
             from statements where state in ('done', 'failed', 'unknown')
             group by 1, 2 order by 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        let unit_outcomes =
            sqlx::query_as("select outcome, count(*) from attempts group by 1 order by 1")
                .fetch_all(&self.pool)
                .await?;
        let bytes_billed = sqlx::query_as(
            "select table_ref, coalesce(sum(bytes_billed), 0)::bigint from statements
             group by 1 order by 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let (units_per_statement, statements_count, units_sum): (Vec<i64>, i64, i64) =
            sqlx::query_as(
                "select coalesce((select array_agg(c order by b) from (
                             select b, count(s.statement_id) as c
                             from unnest($1::bigint[]) as b left join statements s on s.units <= b
                             group by b) buckets), '{}'),
                        (select count(*) from statements),
                        (select coalesce(sum(units), 0)::bigint from statements)",
            )
            .bind(UNITS_PER_STATEMENT_BUCKETS.as_slice())
            .fetch_one(&self.pool)
            .await?;
        Ok(StatementTotals {
            statements,
            unit_outcomes,
            bytes_billed,
            units_per_statement,
            statements_count,
            units_sum,
        })
    }
}
