-- Reverts 0002_lease.sql.
DROP TABLE ferry_leases;
