-- Reverts 0003_bbm.sql.
DROP TABLE ferry_bbm_jobs;
DROP TABLE ferry_bbm_migrations;
