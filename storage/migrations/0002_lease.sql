-- Leases for package lease/pglease: one row per key ever leased. A row
-- outlives the leases on its key, so that each acquisition's fencing token
-- is larger than every earlier one. expires_at is set by the database's
-- clock only; '-infinity' marks a released lease.
CREATE TABLE ferry_leases (
    key         text        PRIMARY KEY CHECK (octet_length(key) BETWEEN 1 AND 255),
    token       bigint      NOT NULL CHECK (token > 0),
    holder      text        NOT NULL DEFAULT '',
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
) WITH (fillfactor = 50); -- room on each page for HOT updates: rows change on every renewal
