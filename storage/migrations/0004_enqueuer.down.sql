-- Reverts 0004_enqueuer.sql.
DROP TABLE ferry_enqueuer_repositories;
