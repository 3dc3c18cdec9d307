-- enqueuer: repositories and their migration state (package enqueuer).
--
-- One row per container repository. state follows enqueuer's state machine;
-- version grows with every change so that compare-and-set updates and
-- reverts can tell a record apart from a later one; state_changed_at is
-- when the current state was entered and orders selection and the stale
-- guard. The per-state timestamps keep when each state was last entered.
CREATE TABLE ferry_enqueuer_repositories (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path               text        NOT NULL,
    state              text        NOT NULL DEFAULT 'default',
    tag_count          integer     NOT NULL DEFAULT 0,
    retry_count        integer     NOT NULL DEFAULT 0,
    skip_reason        text        NOT NULL DEFAULT '',
    abort_reason       text        NOT NULL DEFAULT '',
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    state_changed_at   timestamptz NOT NULL DEFAULT now(),
    pre_importing_at   timestamptz,
    pre_import_done_at timestamptz,
    importing_at       timestamptz,
    import_done_at     timestamptz,
    aborted_at         timestamptz,
    skipped_at         timestamptz,
    CONSTRAINT ferry_enqueuer_repositories_path_key UNIQUE (path),
    CONSTRAINT ferry_enqueuer_repositories_state_check CHECK (state IN (
        'default', 'pre_importing', 'pre_import_done', 'importing',
        'import_done', 'import_aborted', 'import_skipped')),
    CONSTRAINT ferry_enqueuer_repositories_path_check CHECK (path <> '' AND length(path) <= 255),
    CONSTRAINT ferry_enqueuer_repositories_tag_count_check CHECK (tag_count >= 0),
    CONSTRAINT ferry_enqueuer_repositories_retry_count_check CHECK (retry_count >= 0)
);

-- Selection (oldest first within a state), the in-progress count and the
-- stale guard all read this index. Finished repositories, the bulk of the
-- table late in a migration, stay out of it.
CREATE INDEX ferry_enqueuer_repositories_state_idx
    ON ferry_enqueuer_repositories (state, state_changed_at, id)
    WHERE state NOT IN ('import_done', 'import_skipped');
