-- Leases for package lease/pglease: one row per key ever leased. A row
-- outlives the leases on its key, so that each acquisition's fencing token
-- is larger than every earlier one. expires_at is set by the database's
-- clock only; '-infinity' marks a released lease.
--
-- No CHECK constraints: Postgres sets up a table's CHECK expressions anew
-- for every statement that writes a row, and these rows are written by
-- every Acquire, Renew and Release. Keys are validated before any SQL runs
-- (lease.CheckKey: 1 to 255 bytes) and tokens start at 1 and only grow.
CREATE TABLE ferry_leases (
    key         text        PRIMARY KEY,
    token       bigint      NOT NULL,
    holder      text        NOT NULL DEFAULT '',
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
) WITH (fillfactor = 50); -- room on each page for HOT updates: rows change on every renewal
