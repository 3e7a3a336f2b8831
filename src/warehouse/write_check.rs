//! The schema check of a write, shared by both warehouses: the units of a replace checked
//! against the table's [`TableSchema`] with the rules intake uses
//! ([`crate::domain::schema::check`]), and the refusal that names what was found. The
//! emulator refuses with BigQuery's messages; the BigQuery adapter checks before sending
//! (for batches accepted while the schema could not be read) with plain words.

use serde_json::Value;

use super::{Error, WriteUnit};
use crate::domain::schema::Problem;
use crate::domain::TableSchema;

/// At most this many problems are named in a refused write's message.
const NAMED_PROBLEMS: usize = 5;

/// Checks the units of a replace against `schema`: key and partition columns (exist,
/// comparable, the partitioning column when a partition filter is required) and rows.
/// Pointers are `/units/{u}/rows/{i}/…` and `/units/{u}/key_columns/…`.
pub fn check_units(schema: &TableSchema, units: &[WriteUnit]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let keys: Vec<String> = unit.key.keys().cloned().collect();
        let partition = unit.partition.as_ref().map(|(c, _)| c.as_str().to_owned());
        let delete = if unit.rows.is_empty() {
            vec![Value::Object(unit.identity())]
        } else {
            Vec::new()
        };
        let found = schema.check_parts(&keys, partition.as_deref(), &unit.rows, &delete);
        problems.extend(found.into_iter().map(|p| Problem {
            pointer: format!("/units/{u}{}", p.pointer),
            ..p
        }));
    }
    problems
}

/// A refused write as a permanent error naming the first problems with where they are:
/// in BigQuery's words (`bigquery`, the emulator) or in plain ones.
pub fn refused(problems: &[Problem], bigquery: bool) -> Error {
    let named: Vec<String> = problems
        .iter()
        .take(NAMED_PROBLEMS)
        .map(|p| {
            let text = if bigquery { &p.bigquery } else { &p.detail };
            format!("{text} (at {})", p.pointer)
        })
        .collect();
    let more = problems.len().saturating_sub(NAMED_PROBLEMS);
    Error::Permanent {
        message: if more > 0 {
            format!("{}; and {more} more", named.join("; "))
        } else {
            named.join("; ")
        },
    }
}
