-- streamguard: batches, write units, the job table, the conflict log and attempts.
-- Every constraint is named so that errors can be mapped to HTTP answers without
-- matching on message text.

-- A batch as a processor posted it. The request itself is kept (payload_hash detects an
-- idempotency key re-used with a different payload).
create table batches (
    batch_id          uuid primary key,
    processor_name    text not null,
    table_ref         text not null,
    key_columns       text[] not null,
    partition_column  text,
    idempotency_key   text,
    payload_hash      bytea not null,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint batches_idempotency_key_unique unique (processor_name, idempotency_key)
);

-- The rows of a batch that share one key (and partition) value: the unit of replace,
-- retry and conflict. `seq` orders units of the same key by arrival, for supersession.
create table write_units (
    unit_id           uuid primary key,
    batch_id          uuid not null constraint write_units_batch_fk references batches (batch_id),
    seq               bigint generated always as identity,
    position          integer not null,
    table_ref         text not null,
    key               jsonb not null,
    partition_value   jsonb,
    rows              jsonb not null,
    row_count         integer not null,
    state             text not null default 'pending',
    attempts          integer not null default 0,
    conflict_id       uuid,
    next_attempt_at   timestamptz,
    error             text,
    loaded_at         timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint write_units_state_check check (state in
        ('pending', 'loaded', 'deferred', 'failed', 'superseded', 'unresolved')),
    constraint write_units_rows_is_array check (jsonb_typeof(rows) = 'array'),
    constraint write_units_batch_position_unique unique (batch_id, position)
);
-- Supersession looks up the open units of one table and key.
create index write_units_table_key_idx on write_units (table_ref, key, partition_value)
    where state in ('pending', 'deferred');

-- The job table: "attempt unit U at time T". The scheduler's only source of truth.
-- state: available (waiting for run_at), running (claimed, lease until lease_expires_at),
-- completed (nothing more to do). `attempt` counts claims; every write after a claim is
-- fenced on (job_id, attempt, state = 'running').
create table jobs (
    job_id            bigint generated always as identity primary key,
    unit_id           uuid not null constraint jobs_unit_fk references write_units (unit_id),
    table_ref         text not null,
    state             text not null default 'available',
    run_at            timestamptz not null default now(),
    attempt           integer not null default 0,
    max_attempts      integer not null,
    lease_expires_at  timestamptz,
    locked_by         text,
    completed_at      timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint jobs_unit_unique unique (unit_id),
    constraint jobs_state_check check (state in ('available', 'running', 'completed')),
    constraint jobs_running_has_lease check (state <> 'running' or lease_expires_at is not null)
);
create index jobs_due_idx on jobs (run_at) where state = 'available';
create index jobs_running_idx on jobs (table_ref, lease_expires_at) where state = 'running';

-- The conflict log, with the seed document's columns (streaming_conflict_log), generalised:
-- the key is kept as JSON, and game_id / game_date are filled when the key has them.
create table conflicts (
    conflict_id        uuid primary key,
    "timestamp"        timestamptz not null default now(),
    processor_name     text not null,
    table_ref          text not null,
    key                jsonb not null,
    partition_value    jsonb,
    game_id            text,
    game_date          date,
    unit_id            uuid constraint conflicts_unit_fk references write_units (unit_id),
    conflict_type      text not null,
    retry_attempt      integer not null,
    max_retries        integer not null,
    delay_seconds      integer,
    resolved           boolean not null default false,
    resolution_time    timestamptz,
    resolution_method  text,
    rows_affected      integer,
    error_message      text,
    details            jsonb,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    constraint conflicts_type_check check (conflict_type in
        ('streaming_buffer', 'concurrent_dml', 'quota_exceeded')),
    constraint conflicts_resolution_check check (resolution_method is null or resolution_method in
        ('auto_retry', 'manual', 'force_mode', 'timeout', 'superseded'))
);
create index conflicts_timestamp_idx on conflicts ("timestamp");
create index conflicts_unresolved_idx on conflicts ("timestamp") where not resolved;

alter table write_units add constraint write_units_conflict_fk
    foreign key (conflict_id) references conflicts (conflict_id);

-- Every attempt to replace a unit, whatever its outcome.
create table attempts (
    attempt_id         bigint generated always as identity primary key,
    unit_id            uuid not null constraint attempts_unit_fk references write_units (unit_id),
    attempt            integer not null,
    conflict_id        uuid constraint attempts_conflict_fk references conflicts (conflict_id),
    outcome            text not null,
    error_class        text,
    error_message      text,
    delay_seconds      integer,
    next_attempt_at    timestamptz,
    warehouse_job_id   text,
    replica            text not null,
    started_at         timestamptz not null,
    finished_at        timestamptz not null,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    constraint attempts_outcome_check check (outcome in
        ('loaded', 'conflict', 'transient', 'failed', 'superseded')),
    constraint attempts_unit_attempt_unique unique (unit_id, attempt)
);
create index attempts_conflict_idx on attempts (conflict_id);
