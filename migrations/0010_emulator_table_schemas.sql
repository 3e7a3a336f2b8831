-- Emulator tables get a definition in BigQuery's own JSON form (the body of tables.insert:
-- schema.fields, timePartitioning / rangePartitioning with requirePartitionFilter,
-- clustering), so the emulator refuses what BigQuery refuses. `schema_source` says where
-- it came from: `declared` by POST /emulator/tables, or `inferred` from the first write to
-- a table nobody declared. Tables created before this migration have neither until their
-- next write infers one.
alter table emulator.tables
    add column definition jsonb,
    add column schema_source text,
    add constraint tables_schema_source_check
        check (schema_source in ('declared', 'inferred')),
    add constraint tables_definition_has_source
        check ((definition is null) = (schema_source is null)),
    add constraint tables_definition_is_object
        check (definition is null or jsonb_typeof(definition) = 'object');
