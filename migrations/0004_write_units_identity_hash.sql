-- Supersession looks up the open units of one table and key. The first index held the key
-- and partition values themselves, and a btree entry is limited to about 2.7 kB: a batch
-- with long key values (within the intake limits: 16 columns of 1,024 characters) failed
-- with "index row size exceeds btree maximum". Index a digest of the identity instead;
-- intake stores keys in one canonical spelling, so equal keys have equal text.
drop index write_units_table_key_idx;
create index write_units_table_identity_idx on write_units
    (table_ref, md5(key::text || coalesce(partition_value::text, '')))
    where state in ('pending', 'deferred');
