-- Reverts 0001_init.sql, which creates nothing.
SELECT 1;
