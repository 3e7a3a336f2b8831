//! streamguard: exactly-once BigQuery backfills.
//!
//! Processors POST row batches ([`http`]); the service splits them into write units,
//! stores each with a job in Postgres ([`store`]), and the [`scheduler`] replaces each
//! unit's rows in the [`warehouse`] atomically. Units that BigQuery refuses because their
//! rows are still in its streaming buffer become conflicts and are retried by the
//! [`domain::retry`] policy until they land or the give-up horizon passes.
//!
//! The parts, the flow of a batch and the words are described in `docs/architecture.md`:
//! [`domain`] is pure (no I/O), [`store`] owns every SQL statement of the service,
//! [`warehouse`] hides BigQuery and its emulator behind one trait, [`scheduler`] claims and
//! runs groups of due units, [`ops`] holds the use cases HTTP and the scheduler share,
//! [`notify`] sends alerts from the outbox; [`config`] composes the parts' settings, read
//! only by [`app`] and the command line ([`cli`]).

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod notify;
pub mod ops;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod warehouse;

pub use app::App;
pub use config::Settings;
