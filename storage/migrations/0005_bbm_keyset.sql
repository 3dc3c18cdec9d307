-- bbm: keyset batching over keys of any type (one column or several), the
-- delivery a migration's Work declared, its failure policy and arguments.
--
-- Keys are stored as text[] in PostgreSQL's text form, one element per key
-- column; they are compared only in SQL, cast back to the key types. Jobs
-- are cut in key order, so a migration's jobs in id order are in key order.

ALTER TABLE ferry_bbm_migrations
    ADD COLUMN key_columns    text[],
    ADD COLUMN key_types      text[],
    ADD COLUMN lower_key      text[],
    ADD COLUMN upper_key      text[],
    ADD COLUMN delivery       text NOT NULL DEFAULT 'exactly_once',
    ADD COLUMN on_failure     text NOT NULL DEFAULT 'finish_others',
    ADD COLUMN args           jsonb,
    DROP CONSTRAINT ferry_bbm_migrations_strategy_check;

UPDATE ferry_bbm_migrations SET key_columns = ARRAY[key_column], key_types = ARRAY['bigint'],
    lower_key = ARRAY[min_key::text], upper_key = ARRAY[max_key::text],
    strategy = CASE strategy WHEN 'integer_range' THEN 'keyset' ELSE strategy END,
    -- Migrations registered before keep the order they ran with.
    on_failure = 'fail_fast';

ALTER TABLE ferry_bbm_migrations
    ALTER COLUMN key_columns SET NOT NULL,
    ALTER COLUMN key_types SET NOT NULL,
    ALTER COLUMN lower_key SET NOT NULL,
    ALTER COLUMN upper_key SET NOT NULL,
    DROP CONSTRAINT ferry_bbm_migrations_range_check,
    DROP COLUMN key_column,
    DROP COLUMN min_key,
    DROP COLUMN max_key,
    ALTER COLUMN strategy SET DEFAULT 'keyset';
ALTER TABLE ferry_bbm_migrations RENAME COLUMN total_tuples TO estimated_rows;

ALTER TABLE ferry_bbm_migrations
    ADD CONSTRAINT ferry_bbm_migrations_key_check CHECK (
        cardinality(key_columns) >= 1 AND cardinality(key_types) = cardinality(key_columns)
        AND cardinality(lower_key) = cardinality(key_columns)
        AND cardinality(upper_key) = cardinality(key_columns)),
    ADD CONSTRAINT ferry_bbm_migrations_strategy_check CHECK (strategy IN ('keyset', 'null_keys')),
    ADD CONSTRAINT ferry_bbm_migrations_delivery_check CHECK (delivery IN ('exactly_once', 'at_least_once')),
    ADD CONSTRAINT ferry_bbm_migrations_on_failure_check CHECK (on_failure IN ('finish_others', 'fail_fast'));

ALTER TABLE ferry_bbm_jobs
    ADD COLUMN start_key text[],
    ADD COLUMN end_key   text[],
    ADD COLUMN row_count bigint NOT NULL DEFAULT 0;

UPDATE ferry_bbm_jobs SET start_key = ARRAY[min_key::text], end_key = ARRAY[max_key::text],
    row_count = max_key - min_key + 1;

DROP INDEX ferry_bbm_jobs_unfinished_idx;
ALTER TABLE ferry_bbm_jobs
    ALTER COLUMN start_key SET NOT NULL,
    ALTER COLUMN end_key SET NOT NULL,
    DROP CONSTRAINT ferry_bbm_jobs_range_key,
    DROP CONSTRAINT ferry_bbm_jobs_range_check,
    DROP COLUMN min_key,
    DROP COLUMN max_key,
    -- One job per start key; ClaimJob cuts ranges one after the other.
    ADD CONSTRAINT ferry_bbm_jobs_range_key UNIQUE (migration_id, start_key),
    ADD CONSTRAINT ferry_bbm_jobs_rows_check CHECK (row_count >= 0);

-- Workers look only at unfinished jobs; keep that cheap however many finished.
CREATE INDEX ferry_bbm_jobs_unfinished_idx ON ferry_bbm_jobs (migration_id, id)
    WHERE status <> 'finished';
-- The last job of a migration (where the next range starts).
CREATE INDEX ferry_bbm_jobs_last_idx ON ferry_bbm_jobs (migration_id, id DESC);
