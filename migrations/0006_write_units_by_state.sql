-- GET /v1/units?state= lists units of one state, most recently changed first.
create index write_units_state_updated_idx on write_units (state, updated_at desc);
