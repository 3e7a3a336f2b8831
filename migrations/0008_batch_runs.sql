-- Backfill runs: a processor may name the run a batch belongs to (e.g.
-- 'bdl_boxscores backfill 2026-01-24'); GET /v1/runs/{run} reports over the run's batches.
-- The name is validated by the service (1 to 200 characters, no control characters);
-- the check keeps the length rule for writers that bypass it.
alter table batches add column run text
    constraint batches_run_length_check check (run is null or char_length(run) between 1 and 200);

-- GET /v1/runs/{run} finds a run's batches; GET /v1/runs lists runs. Only batches that name
-- a run are indexed.
create index batches_run_idx on batches (run, created_at) where run is not null;
