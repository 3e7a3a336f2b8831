-- Statements: what the warehouse runs. One statement (a BigQuery query job) carries a
-- group of write units of one table. Its row is written *before* it is sent, so a job that
-- outlives our waiting (a crash after jobs.insert, a timeout whose cancel BigQuery did not
-- honour) is found and settled — adopted, waited for, or known not to have landed —
-- before any later statement touches the same keys.
--
-- state: sent (written, maybe not yet received), running (the warehouse has it), done
-- (landed), failed (refused or cancelled: nothing written), unknown (we stopped waiting;
-- settled before the next statement for its keys).
create table statements (
    statement_id   bigint generated always as identity primary key,
    job_id         text not null,
    table_ref      text not null,
    state          text not null default 'sent',
    replica        text not null,
    units          integer not null,
    rows_deleted   bigint,
    rows_inserted  bigint,
    bytes_billed   bigint,
    error_class    text,
    error_message  text,
    sent_at        timestamptz not null default now(),
    finished_at    timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    constraint statements_job_id_unique unique (job_id),
    constraint statements_state_check check (state in ('sent', 'running', 'done', 'failed', 'unknown'))
);
-- Settlement looks for statements that may still run.
create index statements_unsettled_idx on statements (table_ref) where state in ('sent', 'running', 'unknown');

-- Which units (and which attempt of each) a statement carried. A unit may be in several
-- statements of one attempt while a refused group is split to find its blocked keys.
create table statement_units (
    statement_id  bigint not null constraint statement_units_statement_fk references statements (statement_id),
    unit_id       uuid not null constraint statement_units_unit_fk references write_units (unit_id),
    attempt       integer not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint statement_units_pk primary key (statement_id, unit_id)
);
create index statement_units_unit_idx on statement_units (unit_id);

-- Every attempt points at the statement that decided it (null: none was sent — superseded
-- before the call, or a lease lost before it). `lost`: the replica running the attempt
-- stopped (killed, stalled) and its lease expired; the statement's fate is settled before
-- the next attempt.
alter table attempts add column statement_id bigint constraint attempts_statement_fk references statements (statement_id);
alter table attempts drop constraint attempts_outcome_check;
alter table attempts add constraint attempts_outcome_check check (outcome in
    ('loaded', 'conflict', 'transient', 'failed', 'superseded', 'lost'));
create index attempts_statement_idx on attempts (statement_id);

-- A claim takes a group of jobs at once; the group is the unit of the per-table in-flight
-- limit (STREAMGUARD_MAX_PER_TABLE counts statements, not keys).
alter table jobs add column group_id uuid;

-- Pacing, shared by every replica: the interval between statements to one table grows on
-- quota and DML-queue answers and shrinks back on success; `next_at` is the earliest time
-- the next statement may be sent. `holds` keeps a partition just refused for the
-- streaming buffer out of new groups until it can have drained.
create table table_pacing (
    table_ref         text primary key,
    interval_seconds  double precision not null,
    next_at           timestamptz not null default now(),
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint table_pacing_interval_check check (interval_seconds >= 0)
);

create table partition_holds (
    table_ref        text not null,
    partition_value  jsonb not null,
    until            timestamptz not null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint partition_holds_pk primary key (table_ref, partition_value)
);

-- The emulator's record of the statements it ran, so that a statement can outlive its
-- caller and be settled later, as a BigQuery job can (jobs.get). A running statement holds
-- a transaction-scoped advisory lock on its job id; `abandoned` is written by settlement
-- for a job id the emulator never received, so that a late arrival of it is refused.
create table emulator.jobs (
    job_id         text primary key,
    table_ref      text not null,
    state          text not null,
    rows_deleted   bigint,
    rows_inserted  bigint,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    constraint jobs_state_check check (state in ('done', 'abandoned'))
);
