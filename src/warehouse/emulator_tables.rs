//! The emulator's table definitions: a schema, partitioning and clustering in BigQuery's
//! own JSON form (the body of `tables.insert`), kept in `emulator.tables.definition`
//! (`migrations/0010_emulator_table_schemas.sql`). A table is *declared* with
//! [`Emulator::declare`] (`POST /emulator/tables`), or its schema is *inferred* from the
//! first write when nobody declared one ([`TableSchema::infer`]; logged, and shown as
//! `schema_source: inferred`). Every write — insertAll and replaces — is checked against
//! the definition with the rules intake uses ([`crate::domain::schema`]), and refused with
//! BigQuery's messages, so the emulator refuses what BigQuery refuses.

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::emulator::Emulator;
pub use super::write_check::{check_units, refused};
use super::{Error, WriteUnit};
use crate::domain::schema::Problem;
use crate::domain::{TableRef, TableSchema};

/// Where a table's definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaSource {
    /// Declared with `POST /emulator/tables`.
    Declared,
    /// Inferred from the table's first write (nobody declared one).
    Inferred,
}

impl SchemaSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Declared => "declared",
            Self::Inferred => "inferred",
        }
    }
}

/// Why a declaration was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The table already has a declared schema (BigQuery: 409 "Already Exists: Table …").
    #[error("Already Exists: Table {0}")]
    AlreadyExists(String),
    /// Rows the table already holds do not fit the declared schema.
    #[error("{} stored row(s) do not fit the declared schema", .0.len())]
    RowsDoNotFit(Vec<Problem>),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] Error),
}

/// Why an insertAll was refused.
#[derive(Debug, thiserror::Error)]
pub enum InsertAllError {
    /// Rows that do not fit the table's schema, with pointers `/rows/{i}/…` and BigQuery's
    /// messages; nothing was inserted.
    #[error("{} row problem(s)", .0.len())]
    Refused(Vec<Problem>),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] Error),
}

fn database_error(e: sqlx::Error) -> Error {
    Error::Transient {
        message: format!("emulator storage failed: {e}"),
    }
}

impl Emulator {
    /// Declares `table` with `schema` (validated by the caller). A table that exists
    /// without a declared schema (written before, schema inferred or none) takes the
    /// declared one if every row it holds fits it.
    ///
    /// # Errors
    /// [`DeclareError`].
    pub async fn declare(
        &self,
        table: &TableRef,
        schema: &TableSchema,
    ) -> Result<(), DeclareError> {
        let mut tx = self.pool().begin().await.map_err(database_error)?;
        let existing: Option<Option<String>> = sqlx::query_scalar(
            "select schema_source from emulator.tables where table_ref = $1 for update",
        )
        .bind(table.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(database_error)?;
        if existing.flatten().as_deref() == Some("declared") {
            return Err(DeclareError::AlreadyExists(format!(
                "{}:{}.{}",
                table.project(),
                table.dataset(),
                table.table()
            )));
        }
        let rows: Vec<Value> = sqlx::query_scalar(
            "select data from emulator.rows where table_ref = $1 order by row_id",
        )
        .bind(table.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(database_error)?;
        let problems = schema.check_rows(&rows, "/rows", crate::domain::batch::MAX_REPORTED_ERRORS);
        if !problems.is_empty() {
            return Err(DeclareError::RowsDoNotFit(problems));
        }
        store(&mut tx, table, schema, SchemaSource::Declared).await?;
        tx.commit().await.map_err(database_error)?;
        Ok(())
    }

    /// The table's definition and where it came from; `None` for a table never declared
    /// nor written.
    ///
    /// # Errors
    /// [`Error::Transient`] when Postgres fails or a stored definition cannot be read.
    pub async fn definition(
        &self,
        table: &TableRef,
    ) -> Result<Option<(TableSchema, SchemaSource)>, Error> {
        let mut conn = self.pool().acquire().await.map_err(database_error)?;
        load(&mut conn, table).await
    }
}

async fn store(
    conn: &mut PgConnection,
    table: &TableRef,
    schema: &TableSchema,
    source: SchemaSource,
) -> Result<(), Error> {
    let definition = serde_json::to_value(schema).map_err(|e| Error::Permanent {
        message: e.to_string(),
    })?;
    sqlx::query(
        "insert into emulator.tables (table_ref, definition, schema_source) values ($1, $2, $3)
         on conflict (table_ref) do update
           set definition = excluded.definition, schema_source = excluded.schema_source, updated_at = streamguard_now()",
    )
    .bind(table.to_string())
    .bind(definition)
    .bind(source.as_str())
    .execute(conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

async fn load(
    conn: &mut PgConnection,
    table: &TableRef,
) -> Result<Option<(TableSchema, SchemaSource)>, Error> {
    let row: Option<(Option<Value>, Option<String>)> = sqlx::query_as(
        "select definition, schema_source from emulator.tables where table_ref = $1",
    )
    .bind(table.to_string())
    .fetch_optional(conn)
    .await
    .map_err(database_error)?;
    let Some((Some(definition), source)) = row else {
        return Ok(None);
    };
    let schema: TableSchema = serde_json::from_value(definition).map_err(|e| Error::Transient {
        message: format!("the emulator's stored definition of {table} cannot be read: {e}"),
    })?;
    let source = if source.as_deref() == Some("declared") {
        SchemaSource::Declared
    } else {
        SchemaSource::Inferred
    };
    Ok(Some((schema, source)))
}

/// The definition a write to `table` is checked against, and where it came from, inside
/// the write's transaction (the table row exists): the stored one, or one inferred from
/// `sample` (the rows, or the keys, being written) and stored as `inferred`.
///
/// # Errors
/// [`Error::Transient`] when Postgres fails.
pub(crate) async fn definition_for_write(
    conn: &mut PgConnection,
    table: &TableRef,
    sample: &[Value],
) -> Result<(TableSchema, SchemaSource), Error> {
    if let Some(found) = load(conn, table).await? {
        return Ok(found);
    }
    let schema = TableSchema::infer(sample);
    let definition = serde_json::to_value(&schema).map_err(|e| Error::Permanent {
        message: e.to_string(),
    })?;
    // Of two first writes at once, the first to store its inference wins; the other
    // reads it back.
    let stored = sqlx::query(
        "update emulator.tables set definition = $2, schema_source = 'inferred', updated_at = streamguard_now()
         where table_ref = $1 and definition is null",
    )
    .bind(table.to_string())
    .bind(definition)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?
    .rows_affected();
    if stored == 1 {
        tracing::info!(table = %table, columns = schema.fields.len(), "emulator: no schema was declared; inferred one from the first write (declare one with POST /emulator/tables)");
        return Ok((schema, SchemaSource::Inferred));
    }
    Ok(load(conn, table)
        .await?
        .unwrap_or((schema, SchemaSource::Inferred)))
}

/// What a replace's inference looks at: every unit's rows, or its key when it has none.
pub(crate) fn sample(units: &[WriteUnit]) -> Vec<Value> {
    units
        .iter()
        .flat_map(|u| {
            if u.rows.is_empty() {
                vec![Value::Object(u.identity())]
            } else {
                u.rows.clone()
            }
        })
        .collect()
}

/// insertAll's rows as JSON values.
pub(crate) fn as_values(rows: &[Map<String, Value>]) -> Vec<Value> {
    rows.iter().cloned().map(Value::Object).collect()
}
