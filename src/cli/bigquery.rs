//! `streamguard bigquery check`: the flags, and the report printed from
//! [`crate::warehouse::bigquery::check::run`] — one line per step, `ok` or `PROBLEM`.

use clap::Args;

use crate::config::{bigquery_settings, BigQueryArgs};
use crate::domain::{ColumnName, TableRef};
use crate::warehouse::bigquery::check::{self, CheckTarget};

/// Flags of `streamguard bigquery check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bigquery: BigQueryArgs,

    /// A table to check, `project.dataset.table`.
    #[arg(long, value_parser = parse_table)]
    pub table: Option<TableRef>,

    /// The table's key column(s) as processors send them (repeat for several); needed
    /// with `--table`.
    #[arg(long = "key-column", requires = "table", value_parser = parse_column)]
    pub key_columns: Vec<ColumnName>,

    /// The table's partition column, if processors send one.
    #[arg(long, requires = "table", value_parser = parse_column)]
    pub partition_column: Option<ColumnName>,
}

fn parse_table(s: &str) -> Result<TableRef, String> {
    TableRef::parse(s.trim()).map_err(|e| format!("--table: {e}"))
}

fn parse_column(s: &str) -> Result<ColumnName, String> {
    ColumnName::parse(s.trim()).map_err(|e| e.0)
}

/// `streamguard bigquery check`: prints one line per step (`ok` or `PROBLEM`) to stdout
/// and returns whether every step passed.
pub async fn check(args: &CheckArgs) -> bool {
    let settings = match bigquery_settings(&args.bigquery) {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!("PROBLEM: STREAMGUARD_BIGQUERY_PROJECT (or --bigquery-project) is not set: name the GCP project the service's jobs run in");
            return false;
        }
        Err(e) => {
            println!("PROBLEM: {e}");
            return false;
        }
    };
    if args.table.is_some() && args.key_columns.is_empty() {
        println!("PROBLEM: --table needs --key-column (the key columns processors send, e.g. --key-column game_id)");
        return false;
    }
    let target = args.table.clone().map(|table| CheckTarget {
        table,
        key_columns: args.key_columns.clone(),
        partition_column: args.partition_column.clone(),
    });
    let lines = check::run(&settings, target.as_ref()).await;
    for line in &lines {
        println!(
            "{} {}",
            if line.ok { "ok:     " } else { "PROBLEM:" },
            line.text
        );
    }
    let ok = lines.iter().all(|l| l.ok);
    if ok && target.is_none() {
        println!("(add --table project.dataset.table --key-column <column> to check a table too)");
    }
    ok
}
