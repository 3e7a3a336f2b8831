-- The clock seam (src/clock.rs). Every time the service compares or schedules in SQL is
-- read from these two functions instead of now() / clock_timestamp():
--   streamguard_now()   = the transaction's now(),
--   streamguard_clock() = clock_timestamp(),
-- unless the session setting `streamguard.now` holds a time: a manual clock's, set on each
-- pooled connection as it is handed out (tests and the simulation). Production never sets
-- it, so both read Postgres's own clock, the one every replica shares.
create function streamguard_now() returns timestamptz
    language sql stable parallel safe
    as $$ select coalesce(nullif(current_setting('streamguard.now', true), '')::timestamptz, now()) $$;

create function streamguard_clock() returns timestamptz
    language sql volatile parallel safe
    as $$ select coalesce(nullif(current_setting('streamguard.now', true), '')::timestamptz, clock_timestamp()) $$;

-- Column defaults follow the same clock (created_at feeds the linger, run_at the claim).
do $$
declare c record;
begin
    for c in select table_schema, table_name, column_name from information_schema.columns
             where column_default = 'now()' and table_schema in ('public', 'emulator')
    loop
        execute format('alter table %I.%I alter column %I set default streamguard_now()',
                       c.table_schema, c.table_name, c.column_name);
    end loop;
end $$;
