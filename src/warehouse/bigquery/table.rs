//! Table metadata from `tables.get`
//! (<https://cloud.google.com/bigquery/docs/reference/rest/v2/tables/get>): the schema the
//! row parameter is built from, cached per table, and the streaming buffer
//! (bigquery-facts A5, B5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use gcp_bigquery_client::model::streamingbuffer::Streamingbuffer;
use serde::Deserialize;

use super::params::Field;
use crate::domain::{TableRef, TableSchema};
use crate::warehouse::StreamingBuffer;

/// The parts of a `Table` resource the adapter reads. Decoded with its own small type
/// (the crate's `Table` refuses a schema with a `RANGE` column); `streamingBuffer` uses
/// the crate's model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableMeta {
    /// The schema; absent for a table created without one.
    #[serde(default)]
    pub schema: Option<Schema>,
    /// Present only while the table has buffered rows (B5).
    #[serde(default)]
    pub streaming_buffer: Option<Streamingbuffer>,
    /// `TABLE`, `VIEW`, `EXTERNAL`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Time partitioning, when the table has it (kept as JSON for `check`'s report).
    #[serde(default)]
    pub time_partitioning: Option<serde_json::Value>,
    /// Where the table's data lives (`US`, `EU`, `asia-northeast1`, …): where BigQuery runs
    /// a job over it when no location is configured.
    #[serde(default)]
    pub location: Option<String>,
    /// The whole definition (schema with modes and parameters, partitioning with
    /// `requirePartitionFilter`, clustering) in the domain's form, decoded from the same
    /// body by [`TableMeta::decode`]; `None` when it cannot be read.
    #[serde(skip)]
    pub definition: Option<TableSchema>,
}

/// A table schema.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Schema {
    /// Top-level columns, in order.
    #[serde(default)]
    pub fields: Vec<Field>,
}

impl TableMeta {
    /// Decodes a `tables.get` body into the adapter's view and the domain's
    /// [`TableSchema`].
    ///
    /// # Errors
    /// When the body is not a `Table` resource.
    pub fn decode(body: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut meta: Self = serde_json::from_value(body.clone())?;
        if meta.schema.is_some() {
            meta.definition = serde_json::from_value(body).ok();
        }
        Ok(meta)
    }

    /// The top-level columns (empty when the table has no schema).
    pub fn fields(&self) -> Vec<Field> {
        self.schema
            .as_ref()
            .map(|s| s.fields.clone())
            .unwrap_or_default()
    }

    /// The streaming buffer as the warehouse seam reports it.
    ///
    /// `earliest_drain` (a time before which no buffered row leaves) stays `None`:
    /// BigQuery documents no minimum residence in the buffer — "typically a few
    /// minutes", rarely up to 90 (B1, B2) — so no such bound can be justified from
    /// `oldestEntryTime`, and a guessed one would only delay retries. The scheduler then
    /// uses its policy delay alone.
    pub fn streaming_buffer(&self) -> Option<StreamingBuffer> {
        let b = self.streaming_buffer.as_ref()?;
        Some(StreamingBuffer {
            estimated_rows: b.estimated_rows.as_deref().and_then(|r| r.parse().ok()),
            oldest_entry_time: b
                .oldest_entry_time
                .as_deref()
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(DateTime::<Utc>::from_timestamp_millis),
            earliest_drain: None,
        })
    }
}

/// The REST path of a table (every part is a validated name, URL-safe).
pub fn path(table: &TableRef) -> String {
    format!(
        "/projects/{}/datasets/{}/tables/{}",
        table.project(),
        table.dataset(),
        table.table()
    )
}

/// Schemas by table, shared by every attempt of this process (`T` is the adapter's
/// column list, or the domain's whole [`TableSchema`] that intake checks rows against).
/// Refreshed whenever `tables.get` is read: when a row names a column the cached schema
/// lacks, when BigQuery refuses a statement and the table's schema turns out to have
/// changed, when intake finds problems with the cached one, and at each streaming-buffer
/// probe.
#[derive(Debug)]
pub struct SchemaCache<T = Vec<Field>>(Mutex<HashMap<TableRef, Arc<T>>>);

impl<T> Default for SchemaCache<T> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<T> SchemaCache<T> {
    /// The cached schema of `table`.
    pub fn get(&self, table: &TableRef) -> Option<Arc<T>> {
        self.0
            .lock()
            .expect("schema cache lock")
            .get(table)
            .cloned()
    }

    /// Stores `fields` as the schema of `table` and returns it.
    pub fn put(&self, table: &TableRef, fields: T) -> Arc<T> {
        let fields = Arc::new(fields);
        self.0
            .lock()
            .expect("schema cache lock")
            .insert(table.clone(), fields.clone());
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_buffer_fields_are_parsed_from_their_strings() {
        let meta: TableMeta = serde_json::from_str(
            r#"{"schema":{"fields":[{"name":"game_id","type":"STRING","mode":"REQUIRED"},{"name":"span","type":"RANGE","rangeElementType":{"type":"DATE"}}]},
                "streamingBuffer":{"estimatedBytes":"1234","estimatedRows":"10","oldestEntryTime":"1700000000000"}}"#,
        )
        .unwrap();
        let b = meta.streaming_buffer().unwrap();
        assert_eq!(b.estimated_rows, Some(10));
        assert_eq!(
            b.oldest_entry_time.unwrap().timestamp_millis(),
            1_700_000_000_000
        );
        assert_eq!(b.earliest_drain, None);
        assert_eq!(meta.fields().len(), 2);
        let none: TableMeta = serde_json::from_str(r#"{"schema":{"fields":[]}}"#).unwrap();
        assert_eq!(none.streaming_buffer(), None);
    }
}
