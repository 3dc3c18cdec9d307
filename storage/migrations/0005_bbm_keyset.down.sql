-- Reverts 0005_bbm_keyset.sql: back to single bigint keys. A migration or
-- job whose key is not a single integer cannot go back, and fails this
-- file (invalid input syntax for type bigint) instead of losing data.

DROP INDEX ferry_bbm_jobs_last_idx;
DROP INDEX ferry_bbm_jobs_unfinished_idx;
ALTER TABLE ferry_bbm_jobs
    ADD COLUMN min_key bigint,
    ADD COLUMN max_key bigint;
UPDATE ferry_bbm_jobs SET min_key = start_key[1]::bigint, max_key = end_key[1]::bigint;
ALTER TABLE ferry_bbm_jobs
    DROP CONSTRAINT ferry_bbm_jobs_range_key,
    DROP CONSTRAINT ferry_bbm_jobs_rows_check,
    ALTER COLUMN min_key SET NOT NULL,
    ALTER COLUMN max_key SET NOT NULL,
    DROP COLUMN start_key,
    DROP COLUMN end_key,
    DROP COLUMN row_count,
    ADD CONSTRAINT ferry_bbm_jobs_range_key UNIQUE (migration_id, min_key),
    ADD CONSTRAINT ferry_bbm_jobs_range_check CHECK (min_key <= max_key);
CREATE INDEX ferry_bbm_jobs_unfinished_idx ON ferry_bbm_jobs (migration_id, min_key)
    WHERE status <> 'finished';

ALTER TABLE ferry_bbm_migrations RENAME COLUMN estimated_rows TO total_tuples;
ALTER TABLE ferry_bbm_migrations
    DROP CONSTRAINT ferry_bbm_migrations_key_check,
    DROP CONSTRAINT ferry_bbm_migrations_strategy_check,
    DROP CONSTRAINT ferry_bbm_migrations_delivery_check,
    DROP CONSTRAINT ferry_bbm_migrations_on_failure_check,
    ADD COLUMN key_column text,
    ADD COLUMN min_key    bigint,
    ADD COLUMN max_key    bigint;
UPDATE ferry_bbm_migrations SET key_column = key_columns[1],
    min_key = lower_key[1]::bigint, max_key = upper_key[1]::bigint,
    strategy = CASE strategy WHEN 'keyset' THEN 'integer_range' ELSE strategy END;
ALTER TABLE ferry_bbm_migrations
    ALTER COLUMN key_column SET NOT NULL,
    ALTER COLUMN min_key SET NOT NULL,
    ALTER COLUMN max_key SET NOT NULL,
    ALTER COLUMN strategy SET DEFAULT 'integer_range',
    DROP COLUMN key_columns,
    DROP COLUMN key_types,
    DROP COLUMN lower_key,
    DROP COLUMN upper_key,
    DROP COLUMN delivery,
    DROP COLUMN on_failure,
    DROP COLUMN args,
    ADD CONSTRAINT ferry_bbm_migrations_range_check CHECK (min_key <= max_key),
    ADD CONSTRAINT ferry_bbm_migrations_strategy_check CHECK (strategy IN ('integer_range', 'null_keys'));
