-- enqueuer: the host's priority of each repository (package enqueuer).
--
-- The host ranks repositories, for instance by the plan tier of their
-- namespace, and the enqueuer can start the highest priority first
-- (enqueuer.OrderPriority: priority descending, then oldest in the state).
ALTER TABLE ferry_enqueuer_repositories
    ADD COLUMN priority integer NOT NULL DEFAULT 0;

-- Selection in that order reads waiting repositories that are not
-- deferred, like the indexes of 0007.
CREATE INDEX ferry_enqueuer_repositories_ready_priority_idx
    ON ferry_enqueuer_repositories (state, priority DESC, state_changed_at, id)
    WHERE state IN ('default', 'import_aborted') AND defer_reason = '';
