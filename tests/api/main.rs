//! End-to-end tests: the real service on a random port, driven over HTTP, against a fresh
//! Postgres database per test and the embedded emulator (or, in [`bigquery`], a local
//! server playing BigQuery).

mod helpers;

mod backfill;
mod bigquery;
mod crash;
mod intake;
mod scheduling;
mod store;
