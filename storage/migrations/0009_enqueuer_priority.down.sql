-- Reverts 0009_enqueuer_priority.sql.
DROP INDEX ferry_enqueuer_repositories_ready_priority_idx;
ALTER TABLE ferry_enqueuer_repositories
    DROP COLUMN priority;
