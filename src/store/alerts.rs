//! The alert outbox.
//!
//! An event (a breaker opening or closing, a conflict given up, a unit failed) writes its
//! `alerts` row and one `alert_deliveries` row per configured channel *in the event's own
//! transaction*: if the event committed, its alert is queued; if not, neither exists. The
//! `notify` worker claims due deliveries in one committed statement (`for update
//! skip locked`, with a lease and a claim token), sends outside any transaction, and marks
//! them sent fenced on the token — so two replicas never both send one delivery, and a
//! replica that dies mid-send leaves a delivery that is claimed again when its lease ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Error, Store};

/// The channel an alert is queued for when no channel is configured: the worker logs it.
pub const LOG_CHANNEL: &str = "log";

/// Queues an alert for every configured channel (or [`LOG_CHANNEL`]) on `conn`, which is
/// the event's transaction.
///
/// # Errors
/// [`Error::Database`].
pub(crate) async fn insert(
    conn: &mut sqlx::PgConnection,
    store: &Store,
    kind: &str,
    scope: &str,
    summary: &str,
    payload: Value,
) -> Result<i64, Error> {
    let channels: Vec<String> = if store.config.alert_channels.is_empty() {
        vec![LOG_CHANNEL.to_owned()]
    } else {
        store.config.alert_channels.clone()
    };
    let alert_id: i64 = sqlx::query_scalar(
        "with a as (
             insert into alerts (kind, scope, summary, payload) values ($1, $2, $3, $4) returning alert_id)
         insert into alert_deliveries (alert_id, channel, scope)
         select a.alert_id, c, $2 from a, unnest($5::text[]) as c
         returning alert_id",
    )
    .bind(kind)
    .bind(scope)
    .bind(summary)
    .bind(payload)
    .bind(&channels)
    .fetch_one(conn)
    .await?;
    Ok(alert_id)
}

/// A delivery claimed for sending, with its alert.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery_id: i64,
    /// The alert.
    pub alert_id: i64,
    /// `slack`, `webhook`, `email` or `log`.
    pub channel: String,
    /// The breaker scope or processor the alert is about.
    pub scope: String,
    /// `breaker_opened`, `breaker_closed`, `conflict_timeout`, `unit_failed`, `daily_digest`.
    pub kind: String,
    /// One line.
    pub summary: String,
    /// The event's facts.
    pub payload: Value,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// Sending attempts, this one included.
    pub attempts: i32,
}

impl Store {
    /// Claims up to `limit` due deliveries (pending and due, or claimed by a replica whose
    /// lease ran out) under `token`, with a lease of `lease`. One committed statement.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn claim_deliveries(
        &self,
        token: Uuid,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, Error> {
        Ok(sqlx::query_as(
            "with due as (
                 select delivery_id from alert_deliveries
                 where (state = 'pending' and next_attempt_at <= streamguard_now())
                    or (state = 'sending' and lease_expires_at <= streamguard_now())
                 order by delivery_id limit $1
                 for update skip locked),
             claimed as (
                 update alert_deliveries d set state = 'sending', claim_token = $2, attempts = d.attempts + 1,
                        lease_expires_at = streamguard_now() + make_interval(secs => $3), updated_at = streamguard_now()
                 from due where d.delivery_id = due.delivery_id
                 returning d.delivery_id, d.alert_id, d.channel, d.scope, d.attempts)
             select c.delivery_id, c.alert_id, c.channel, c.scope, a.kind, a.summary, a.payload, a.created_at, c.attempts
             from claimed c join alerts a using (alert_id)
             order by c.delivery_id",
        )
        .bind(i64::from(limit))
        .bind(token)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }

    /// When a message about `scope` and `kind` last went out on `channel`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn last_sent(
        &self,
        channel: &str,
        scope: &str,
        kind: &str,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(sqlx::query_scalar(
            "select max(d.sent_at) from alert_deliveries d join alerts a using (alert_id)
             where d.state = 'sent' and d.channel = $1 and d.scope = $2 and a.kind = $3",
        )
        .bind(channel)
        .bind(scope)
        .bind(kind)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Marks claimed deliveries sent as one message `message_id`; fenced on `token`.
    /// Returns how many were still ours.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn mark_sent(
        &self,
        ids: &[i64],
        token: Uuid,
        message_id: Uuid,
    ) -> Result<u64, Error> {
        Ok(sqlx::query(
            "update alert_deliveries set state = 'sent', sent_at = streamguard_now(), message_id = $3, last_error = null,
                    lease_expires_at = null, updated_at = streamguard_now()
             where delivery_id = any($1) and claim_token = $2 and state = 'sending'",
        )
        .bind(ids)
        .bind(token)
        .bind(message_id)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Puts claimed deliveries back to wait until `at`: after a failed send (`error` set),
    /// or held back by the rate limit (`error` none; the claim is then not counted as an
    /// attempt). Fenced on `token`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn postpone(
        &self,
        ids: &[i64],
        token: Uuid,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<u64, Error> {
        Ok(sqlx::query(
            "update alert_deliveries set state = 'pending', next_attempt_at = $3,
                    attempts = case when $4::text is null then attempts - 1 else attempts end,
                    last_error = coalesce($4, last_error), lease_expires_at = null, updated_at = streamguard_now()
             where delivery_id = any($1) and claim_token = $2 and state = 'sending'",
        )
        .bind(ids)
        .bind(token)
        .bind(at)
        .bind(error)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Queues the daily digest (counts of the last 24 h, unresolved conflicts, breaker
    /// trips) unless one was queued in the last 23 hours; `true` when it queued one. The
    /// check and the insert run under one advisory lock, so replicas queue one digest.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn queue_daily_digest(&self) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(DIGEST_LOCK)
            .execute(&mut *tx)
            .await?;
        let recent: bool = sqlx::query_scalar(
            "select exists (select 1 from alerts where kind = 'daily_digest' and created_at > streamguard_now() - interval '23 hours')",
        )
        .fetch_one(&mut *tx)
        .await?;
        if recent {
            return Ok(false);
        }
        let payload: Value = sqlx::query_scalar(
            "select jsonb_build_object(
                 'conflicts', (select count(*) from conflicts where \"timestamp\" > streamguard_now() - interval '24 hours'),
                 'resolved', (select count(*) from conflicts where \"timestamp\" > streamguard_now() - interval '24 hours' and resolved),
                 'units_loaded', (select count(*) from write_units where loaded_at > streamguard_now() - interval '24 hours'),
                 'units_failed', (select count(*) from write_units where state = 'failed' and updated_at > streamguard_now() - interval '24 hours'),
                 'breaker_trips', (select count(*) from breaker_transitions
                                   where to_state in ('open', 'forced_open') and created_at > streamguard_now() - interval '24 hours'),
                 'unresolved', coalesce((select jsonb_agg(jsonb_build_object('conflict_id', conflict_id, 'processor_name', processor_name,
                                          'table', table_ref, 'key', key, 'retry_attempt', retry_attempt) order by \"timestamp\" desc)
                                        from (select * from conflicts where not resolved
                                              and \"timestamp\" > streamguard_now() - interval '24 hours' limit 50) u), '[]'::jsonb))",
        )
        .fetch_one(&mut *tx)
        .await?;
        let summary = format!(
            "daily health check: {} conflicts in 24 h ({} resolved), {} unresolved listed, {} breaker trips",
            payload["conflicts"],
            payload["resolved"],
            payload["unresolved"].as_array().map_or(0, Vec::len),
            payload["breaker_trips"]
        );
        insert(&mut tx, self, "daily_digest", "all", &summary, payload).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Key of the advisory lock that serialises digest queueing ("sgdg").
const DIGEST_LOCK: i64 = 0x7367_6467;
