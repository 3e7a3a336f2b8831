-- The claim walks the tables that have due jobs (a loose index scan: one index probe per
-- table) and takes the earliest due jobs of each, instead of ranking every due job: with a
-- backlog of 50,000 due jobs the ranking took about 0.3 s per claim, under the lock that
-- serialises claimers.
create index jobs_due_by_table_idx on jobs (table_ref, run_at, job_id) where state = 'available';
