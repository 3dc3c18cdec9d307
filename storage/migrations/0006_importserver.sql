-- importserver: the registry side of the import protocol (package
-- transfer/importserver).
--
-- One row per repository: its last pre-import or final import. run grows
-- with every start, so (path, run) names one attempt and every change is a
-- compare-and-set on it and on status. owner is the registry instance that
-- runs it; heartbeat_at is when that instance last said so, which is how an
-- import whose process died is told apart from a slow one.
CREATE TABLE ferry_importserver_imports (
    path             text        PRIMARY KEY,
    type             text        NOT NULL,
    status           text        NOT NULL,
    detail           text        NOT NULL DEFAULT '',
    run              bigint      NOT NULL DEFAULT 1,
    owner            text        NOT NULL DEFAULT '',
    cancel_requested boolean     NOT NULL DEFAULT false,
    blobs_copied     bigint      NOT NULL DEFAULT 0,
    blobs_skipped    bigint      NOT NULL DEFAULT 0,
    bytes_copied     bigint      NOT NULL DEFAULT 0,
    manifests        integer     NOT NULL DEFAULT 0,
    tags             integer     NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    heartbeat_at     timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ferry_importserver_imports_path_check CHECK (path <> '' AND length(path) <= 255),
    CONSTRAINT ferry_importserver_imports_type_check CHECK (type IN ('pre', 'final')),
    CONSTRAINT ferry_importserver_imports_status_check CHECK (status IN (
        'pre_import_in_progress', 'pre_import_complete', 'pre_import_failed', 'pre_import_canceled',
        'import_in_progress', 'import_complete', 'import_failed', 'import_canceled')),
    CONSTRAINT ferry_importserver_imports_run_check CHECK (run >= 1)
);

-- The count of imports in progress (every start) and the stale sweep read
-- only the running imports.
CREATE INDEX ferry_importserver_imports_running_idx
    ON ferry_importserver_imports (heartbeat_at)
    WHERE status IN ('pre_import_in_progress', 'import_in_progress');

-- The outbox: every outcome, written in the same statement that records it,
-- until the coordinator acknowledged it (state delivered) or refused it for
-- good (state failed). locked_by/lock_token/locked_until lease a
-- notification to the process delivering it.
CREATE TABLE ferry_importserver_notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path            text        NOT NULL,
    run             bigint      NOT NULL,
    status          text        NOT NULL,
    detail          text        NOT NULL DEFAULT '',
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    refusals        integer     NOT NULL DEFAULT 0,
    last_code       integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    locked_by       text,
    lock_token      text,
    locked_until    timestamptz,
    CONSTRAINT ferry_importserver_notifications_run_key UNIQUE (path, run),
    CONSTRAINT ferry_importserver_notifications_state_check CHECK (state IN ('pending', 'delivered', 'failed'))
);

-- Due pending notifications, oldest first; and a repository's older
-- pending one, which must go first.
CREATE INDEX ferry_importserver_notifications_due_idx
    ON ferry_importserver_notifications (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX ferry_importserver_notifications_path_idx
    ON ferry_importserver_notifications (path, id) WHERE state = 'pending';
