//! Intake of a batch: the whole batch is checked first — the configured limits, each
//! key's size against one atomic write, every row against the table's schema — and
//! nothing of a bad batch is accepted; a good one is stored durably with one job per write
//! unit in one transaction ([`crate::store::Store::insert_batch`]).

use sha2::{Digest, Sha256};

use super::{Error, Ops};
use crate::domain::batch::MAX_REPORTED_ERRORS;
use crate::domain::schema::{SchemaCheck, SchemaCheckStatus};
use crate::domain::{BatchRequest, FieldError, TableRef};
use crate::store::batches::Intake;

/// A batch taken in.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// What the store did (id, replayed, superseded).
    pub intake: Intake,
    /// Whether the rows could be checked against the table's schema.
    pub schema_check: SchemaCheck,
    /// Write units in the batch.
    pub units: usize,
}

impl Ops {
    /// Checks and stores a batch.
    ///
    /// # Errors
    /// [`Error::Invalid`] listing each problem (limits, a key too big for one write, the
    /// schema); the store's refusals (an idempotency key reused with another payload, keys
    /// of another shape in flight).
    pub async fn submit(&self, request: &BatchRequest) -> Result<Submitted, Error> {
        let batch = self.validate(request)?;
        let too_big: Vec<FieldError> = batch
            .units
            .iter()
            .filter_map(|u| self.warehouse.check_unit(&u.rows).err().map(|e| (u, e)))
            .take(MAX_REPORTED_ERRORS)
            .map(|(u, e)| {
                FieldError::new(
                    "/rows",
                    format!("key {}: {e}", serde_json::Value::Object(u.key.clone())),
                )
            })
            .collect();
        if !too_big.is_empty() {
            return Err(Error::Invalid {
                detail: format!(
                    "{} key(s) are too big for one atomic write; nothing of the batch was accepted",
                    too_big.len()
                ),
                errors: too_big,
            });
        }
        let (schema_check, schema) = self.check_schema(request, &batch.table).await?;
        // One spelling per key value (`"31"` and `31` are one INT64 key), so units of one
        // key supersede each other however a processor spells it.
        let batch = match schema {
            Some(schema) => {
                let mut canonical = request.clone();
                schema.canonicalize_keys(&mut canonical);
                if canonical.rows == request.rows && canonical.delete_keys == request.delete_keys {
                    batch
                } else {
                    self.validate(&canonical)?
                }
            }
            None => batch,
        };
        let payload = serde_json::to_vec(request).map_err(anyhow::Error::from)?;
        let hash = Sha256::digest(&payload);
        let intake = self
            .store
            .insert_batch(&batch, &hash, self.retry.max_attempts())
            .await?;
        Ok(Submitted {
            intake,
            schema_check,
            units: batch.units.len(),
        })
    }

    fn validate(&self, request: &BatchRequest) -> Result<crate::domain::ValidatedBatch, Error> {
        request
            .validate(&self.limits)
            .map_err(|errors| Error::Invalid {
                detail: format!(
                    "the batch has {} problem(s); nothing of it was accepted",
                    errors.len()
                ),
                errors,
            })
    }

    /// Checks every row, key and the partition column against the table's schema (see
    /// [`crate::domain::schema::check`]). Problems found with a cached schema are confirmed
    /// with a fresh one (a column may have been added since), so a stale cache never
    /// refuses a good batch. When the schema cannot be read the batch is accepted, and the
    /// answer says so: an outage of BigQuery's metadata API must not stop processors.
    ///
    /// Returns the check's report and the schema the rows fit (`None` when unchecked).
    ///
    /// # Errors
    /// [`Error::Invalid`] listing each problem with its pointer.
    async fn check_schema(
        &self,
        request: &BatchRequest,
        table: &TableRef,
    ) -> Result<(SchemaCheck, Option<crate::domain::TableSchema>), Error> {
        let unchecked = |why: String| SchemaCheck {
            status: SchemaCheckStatus::Unchecked,
            detail: format!(
                "{why}; the rows were accepted unchecked and are checked at the first attempt"
            ),
        };
        let schema = match self.warehouse.table_schema(table, false).await {
            Ok(Some(schema)) => schema,
            Ok(None) => return Ok((unchecked(format!("the {} has no schema for table {table} yet (an emulator table takes the one inferred from its first write unless declared with POST /emulator/tables)", self.warehouse.kind())), None)),
            Err(e) => {
                tracing::warn!(table = %table, error = %e, "table schema unreadable; batch accepted unchecked");
                return Ok((unchecked(format!("the schema of {table} could not be read ({e})")), None));
            }
        };
        let mut schema = schema;
        let mut problems = schema.check_batch(request);
        if !problems.is_empty() {
            if let Ok(Some(fresh)) = self.warehouse.table_schema(table, true).await {
                if fresh != schema {
                    problems = fresh.check_batch(request);
                    schema = fresh;
                }
            }
        }
        if problems.is_empty() {
            let check = SchemaCheck {
                status: SchemaCheckStatus::Checked,
                detail: format!("every row fits the schema of {table}"),
            };
            return Ok((check, Some(schema)));
        }
        Err(Error::Invalid {
            detail: format!(
                "{} problem(s) against the schema of {table}; nothing of the batch was accepted",
                problems.len()
            ),
            errors: problems.into_iter().map(Into::into).collect(),
        })
    }
}
