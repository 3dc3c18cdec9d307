-- bbm: batched background migrations (package github.com/ferryhq/ferry/bbm).

CREATE TABLE ferry_bbm_migrations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    table_schema  text        NOT NULL,
    table_name    text        NOT NULL,
    column_name   text        NOT NULL,
    key_column    text        NOT NULL,
    min_key       bigint      NOT NULL,
    max_key       bigint      NOT NULL,
    batch_size    integer     NOT NULL,
    status        text        NOT NULL DEFAULT 'active',
    work_name     text        NOT NULL,
    strategy      text        NOT NULL DEFAULT 'integer_range',
    error_code    text        NOT NULL DEFAULT '',
    error_message text        NOT NULL DEFAULT '',
    total_tuples  bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    CONSTRAINT ferry_bbm_migrations_name_key UNIQUE (name),
    CONSTRAINT ferry_bbm_migrations_range_check CHECK (min_key <= max_key),
    CONSTRAINT ferry_bbm_migrations_batch_size_check CHECK (batch_size > 0),
    CONSTRAINT ferry_bbm_migrations_status_check
        CHECK (status IN ('paused', 'active', 'running', 'finished', 'failed')),
    CONSTRAINT ferry_bbm_migrations_strategy_check
        CHECK (strategy IN ('integer_range', 'null_keys'))
);

CREATE INDEX ferry_bbm_migrations_status_idx ON ferry_bbm_migrations (status, id);

CREATE TABLE ferry_bbm_jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id     bigint      NOT NULL REFERENCES ferry_bbm_migrations (id) ON DELETE CASCADE,
    min_key          bigint      NOT NULL,
    max_key          bigint      NOT NULL,
    batch_size       integer     NOT NULL,
    status           text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    error_code       text        NOT NULL DEFAULT '',
    error_message    text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    duration_us      bigint      NOT NULL DEFAULT 0,
    -- One job per start key; ranges never overlap (ClaimJob checks).
    CONSTRAINT ferry_bbm_jobs_range_key UNIQUE (migration_id, min_key),
    CONSTRAINT ferry_bbm_jobs_range_check CHECK (min_key <= max_key),
    CONSTRAINT ferry_bbm_jobs_attempts_check CHECK (attempts >= 0),
    CONSTRAINT ferry_bbm_jobs_status_check CHECK (status IN ('running', 'finished', 'failed'))
);

-- Workers look only at unfinished jobs; keep that cheap however many finished.
CREATE INDEX ferry_bbm_jobs_unfinished_idx ON ferry_bbm_jobs (migration_id, min_key)
    WHERE status <> 'finished';
CREATE INDEX ferry_bbm_jobs_lease_idx ON ferry_bbm_jobs (lease_expires_at)
    WHERE status = 'running';
