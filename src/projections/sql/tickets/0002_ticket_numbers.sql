-- The ticket number people say ("repair 1042"); null for tickets opened before numbers.

ALTER TABLE {schema}.tickets ADD COLUMN number bigint;
