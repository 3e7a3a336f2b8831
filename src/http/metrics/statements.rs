//! The statement counters and the units-per-statement histogram, rendered from
//! [`StatementTotals`] (counted in Postgres, so every replica reports the same totals).

use std::fmt::Write;

use super::latency::escape;
use crate::store::statement_metrics::{StatementTotals, UNITS_PER_STATEMENT_BUCKETS};

/// Appends the families to `out`, each with its `HELP` and `TYPE` lines.
pub fn render(t: &StatementTotals, out: &mut String) {
    let mut counter = |name: &str, help: &str, samples: Vec<(String, i64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    counter(
        "streamguard_warehouse_statements_total",
        "Warehouse statements (query jobs) that ended, by table and outcome (loaded, or the refusal's error class).",
        t.statements
            .iter()
            .map(|(table, outcome, n)| {
                (
                    format!("{{table=\"{}\",outcome=\"{}\"}}", escape(table), escape(outcome)),
                    *n,
                )
            })
            .collect(),
    );
    counter(
        "streamguard_units_total",
        "Unit attempts by outcome (loaded, conflict, transient, failed, superseded, lost).",
        t.unit_outcomes
            .iter()
            .map(|(outcome, n)| (format!("{{outcome=\"{}\"}}", escape(outcome)), *n))
            .collect(),
    );
    counter(
        "streamguard_warehouse_bytes_billed_total",
        "Bytes billed by the warehouse for statements, by table (BigQuery's totalBytesBilled).",
        t.bytes_billed
            .iter()
            .map(|(table, n)| (format!("{{table=\"{}\"}}", escape(table)), *n))
            .collect(),
    );
    let name = "streamguard_units_per_statement";
    let _ = writeln!(
        out,
        "# HELP {name} Write units one warehouse statement carried.\n# TYPE {name} histogram"
    );
    for (bound, n) in UNITS_PER_STATEMENT_BUCKETS
        .iter()
        .zip(&t.units_per_statement)
    {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", t.statements_count);
    let _ = writeln!(out, "{name}_sum {}", t.units_sum);
    let _ = writeln!(out, "{name}_count {}", t.statements_count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let mut out = String::new();
        render(
            &StatementTotals {
                statements: vec![("p.d.t".into(), "loaded".into(), 3)],
                unit_outcomes: vec![("loaded".into(), 40)],
                bytes_billed: vec![("p.d.t".into(), 10_485_760)],
                units_per_statement: vec![0, 1, 1, 1, 2, 3, 3, 3, 3],
                statements_count: 3,
                units_sum: 141,
            },
            &mut out,
        );
        assert!(out.contains(
            "streamguard_warehouse_statements_total{table=\"p.d.t\",outcome=\"loaded\"} 3\n"
        ));
        assert!(out.contains("streamguard_units_total{outcome=\"loaded\"} 40\n"));
        assert!(
            out.contains("streamguard_warehouse_bytes_billed_total{table=\"p.d.t\"} 10485760\n")
        );
        assert!(out.contains("# TYPE streamguard_units_per_statement histogram\n"));
        assert!(out.contains("streamguard_units_per_statement_bucket{le=\"2\"} 1\n"));
        assert!(out.contains("streamguard_units_per_statement_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("streamguard_units_per_statement_sum 141\n"));
    }
}
