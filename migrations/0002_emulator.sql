-- The embedded BigQuery emulator keeps its tables here, in a schema of its own, so that a
-- restarted service and every replica see the same warehouse. Rows carry `buffered_until`:
-- a row streamed with insertAll sits in the streaming buffer until then; rows written by a
-- replace never enter the buffer (buffered_until is null).
create schema if not exists emulator;

create table emulator.tables (
    table_ref   text primary key,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table emulator.rows (
    row_id          bigint generated always as identity primary key,
    table_ref       text not null constraint rows_table_fk references emulator.tables (table_ref),
    data            jsonb not null,
    buffered_until  timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint rows_data_is_object check (jsonb_typeof(data) = 'object')
);
create index rows_table_idx on emulator.rows (table_ref);
create index rows_data_idx on emulator.rows using gin (data jsonb_path_ops);
