-- A merged customer (a tombstone) keeps its row, hidden from every search, until the
-- merge is undone: the survivor it points at is the one found.
ALTER TABLE {schema}.customers ADD COLUMN merged_into uuid;
