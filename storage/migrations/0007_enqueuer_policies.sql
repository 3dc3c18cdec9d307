-- enqueuer: deferral by filters, selection orders, listings by path, and
-- the latest start (package enqueuer).
--
-- A repository that a filter rules out for now stays in its waiting state
-- with a defer reason and the key of the filter rules that deferred it;
-- when the rules change (another key) the deferral is cleared and the
-- repository is looked at again. A deferred repository keeps its
-- state_changed_at, so it keeps its place in the queue.
ALTER TABLE ferry_enqueuer_repositories
    ADD COLUMN defer_reason text NOT NULL DEFAULT '',
    ADD COLUMN defer_key    text NOT NULL DEFAULT '',
    ADD COLUMN deferred_at  timestamptz,
    ADD CONSTRAINT ferry_enqueuer_repositories_defer_check CHECK ((defer_reason = '') = (defer_key = ''));

-- Selection reads only waiting repositories that are not deferred, in the
-- enqueuer's order: oldest first, or smallest first. Deferred ones, which
-- may be most of them (a plan tier not migrated yet), stay out of these.
CREATE INDEX ferry_enqueuer_repositories_ready_idx
    ON ferry_enqueuer_repositories (state, state_changed_at, id)
    WHERE state IN ('default', 'import_aborted') AND defer_reason = '';
CREATE INDEX ferry_enqueuer_repositories_ready_size_idx
    ON ferry_enqueuer_repositories (state, tag_count, state_changed_at, id)
    WHERE state IN ('default', 'import_aborted') AND defer_reason = '';

-- Reconsidering after a change of the filter rules finds the deferrals of
-- other keys by two range scans of this one.
CREATE INDEX ferry_enqueuer_repositories_deferred_idx
    ON ferry_enqueuer_repositories (defer_key)
    WHERE defer_reason <> '';

-- Finished and skipped repositories in time order (the latest finished
-- imports feed the forecast; skipped ones are listed for a reset): the
-- complement of ferry_enqueuer_repositories_state_idx.
CREATE INDEX ferry_enqueuer_repositories_settled_idx
    ON ferry_enqueuer_repositories (state, state_changed_at, id)
    WHERE state IN ('import_done', 'import_skipped');

-- Listings by state and path prefix, in byte order whatever the database's
-- collation.
CREATE INDEX ferry_enqueuer_repositories_state_path_idx
    ON ferry_enqueuer_repositories (state, path COLLATE "C");

-- The latest start, for the minimum wait between two starts.
CREATE INDEX ferry_enqueuer_repositories_pre_importing_at_idx
    ON ferry_enqueuer_repositories (pre_importing_at);
