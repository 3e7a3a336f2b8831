-- The operator console's lists.
--
-- `GET /v1/units` without `state` lists every unit, most recently changed first, a page at
-- a time: without this index that is a sort of the whole table per request
-- (write_units_state_updated_idx leads with state, so it cannot serve an unfiltered order).
create index write_units_updated_idx on write_units (updated_at desc, unit_id);

-- `GET /v1/conflicts` pages newest first with a keyset cursor on ("timestamp", conflict_id):
-- this index serves the order and the cursor condition in one range scan.
create index conflicts_timestamp_id_idx on conflicts ("timestamp" desc, conflict_id desc);
