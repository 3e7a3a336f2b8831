//! The domain: batches and write units, BigQuery names, the retry policy, the circuit
//! breaker's state machine and the words of the conflict log. Pure: nothing here does I/O
//! or reads the clock, so every rule is tested with plain values and an explicit `now`.

pub mod batch;
pub mod breaker;
pub mod conflict;
pub mod lifecycle;
pub mod names;
pub mod raw_json;
pub mod retry;
pub mod run;
pub mod schema;
pub mod unit;

pub use batch::{BatchRequest, FieldError, NewUnit, ValidatedBatch};
pub use conflict::{ConflictType, ErrorClass, ResolutionMethod};
pub use names::{ColumnName, IdempotencyKey, ProcessorName, TableRef};
pub use retry::RetryPolicy;
pub use run::RunName;
pub use schema::TableSchema;
pub use unit::UnitState;
