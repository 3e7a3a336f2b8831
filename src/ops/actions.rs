//! Operators' actions on a conflict or unit — resolve, retry now, cancel — each recorded
//! with the actor, the reason and the time in the conflict log
//! (`details.operator_actions`). Force has its own module ([`super::force`]).

use uuid::Uuid;

use super::{required_reason, Error, Ops};
use crate::domain::{FieldError, TableRef};
use crate::store::operator::ActionResult;

impl Ops {
    /// Ends a conflict: `manual` (a note is required) or, for a processor's own conflict,
    /// `auto_retry` (its own retry landed). A unit the service still retried is cancelled.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a blank note, an unknown method, or `auto_retry` on the
    /// service's own conflict; [`Error::NotFound`]; the store's refusals.
    pub async fn resolve(
        &self,
        conflict_id: Uuid,
        method: &str,
        note: &str,
        actor: &str,
    ) -> Result<ActionResult, Error> {
        let t = self.target(conflict_id).await?;
        let note = match method {
            "manual" => required_reason(note, "/note")?.to_owned(),
            "auto_retry" if t.unit_id.is_none() => match note.trim() {
                "" => "the processor's own retry landed".to_owned(),
                n => n.to_owned(),
            },
            "auto_retry" => return Err(Error::Invalid {
                detail:
                    "the service retries this conflict itself; an operator resolves it as `manual`"
                        .into(),
                errors: vec![FieldError::new(
                    "/method",
                    "only `manual` for the service's own conflicts",
                )],
            }),
            _ => {
                return Err(Error::Invalid {
                    detail: "`method` is `manual` or `auto_retry`".into(),
                    errors: vec![FieldError::new("/method", "`manual` or `auto_retry`")],
                })
            }
        };
        if let Some(unit_id) = t.unit_id {
            self.settle_unit(&t.table, unit_id).await?;
        }
        Ok(self
            .store
            .resolve_conflict(conflict_id, method, &note, actor)
            .await?)
    }

    /// Makes the conflict's unit due now, ignoring backoff (and the open breaker, once,
    /// with `ignore_breaker`); the reason is optional.
    ///
    /// # Errors
    /// The store's refusals (resolved, kept by its processor, superseded, in flight).
    pub async fn retry_now(
        &self,
        conflict_id: Uuid,
        ignore_breaker: bool,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<ActionResult, Error> {
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("(no reason given)");
        Ok(self
            .store
            .retry_conflict(conflict_id, ignore_breaker, actor, reason)
            .await?)
    }

    /// Stops retrying a unit (its open conflict is resolved `manual`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a blank reason; the store's refusals (landed, ended, in
    /// flight).
    pub async fn cancel(
        &self,
        unit_id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<ActionResult, Error> {
        let reason = required_reason(reason, "/reason")?;
        if let Some(table) = self.store.unit_table(unit_id).await? {
            self.settle_unit(&table, unit_id).await?;
        }
        Ok(self.store.cancel_unit(unit_id, actor, reason).await?)
    }

    /// Asks the warehouse about every statement that carried `unit_id` and may still land
    /// it, and records the answers, so that ending the unit tells the truth: one that
    /// landed keeps the unit from being cancelled (the store refuses, naming it; the
    /// unit's next attempt adopts it), one refused or never arrived no longer stands in
    /// the way.
    async fn settle_unit(&self, table: &str, unit_id: Uuid) -> Result<(), Error> {
        let Ok(table_ref) = TableRef::parse(table) else {
            return Ok(()); // nothing was ever sent for a table that cannot be named
        };
        for statement in self.store.unsettled_statements(table, &[unit_id]).await? {
            if statement.carried.contains(&unit_id) && !statement.landed {
                self.forcer.settle_statement(&table_ref, &statement).await;
            }
        }
        Ok(())
    }
}
