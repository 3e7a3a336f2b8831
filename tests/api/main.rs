//! End-to-end tests: the real service on a random port, driven over HTTP, against a fresh
//! Postgres database per test and the embedded emulator (or, in [`bigquery`], a local
//! server playing BigQuery).

// The helpers are `pub` for the test modules of this one binary.
#![allow(unreachable_pub)]

mod helpers;

mod alerts;
mod auth;
mod backfill;
mod batch_properties;
mod bigquery;
mod breakers;
mod console;
mod crash;
mod faults;
mod hostile_input;
mod intake;
mod listen;
mod openapi;
mod operator;
mod ordering;
mod runs;
mod scheduling;
mod schema;
mod shutdown;
mod statements;
mod store;
