-- 0011_imports: catalog imports. A file's rows are stored when it is
-- accepted, then applied one at a time by the runner that leases the
-- import; each row records its outcome.

CREATE TABLE imports (
    id          TEXT    NOT NULL PRIMARY KEY,
    owner       INTEGER NOT NULL, -- the importing key's user_id, 0 for any
    format      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    total       INTEGER NOT NULL,
    applied     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    lease_until INTEGER,          -- a runner holds it until then
    lease_token INTEGER
) STRICT;
CREATE INDEX imports_open ON imports (created_at) WHERE status <> 'completed';

CREATE TABLE import_rows (
    import_id TEXT    NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line      INTEGER NOT NULL,
    doc       TEXT    NOT NULL,          -- the row's product document (JSON)
    sku       TEXT,                      -- its SKU: the last row of a SKU is applied
    state     INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)), -- pending, applied, failed
    error     TEXT,                      -- catalog.ImportRowError of a failed row (JSON)
    PRIMARY KEY (import_id, line)
) STRICT;
CREATE INDEX import_rows_pending ON import_rows (import_id, line) WHERE state = 0;
CREATE INDEX import_rows_sku ON import_rows (import_id, sku, line) WHERE sku IS NOT NULL;
CREATE INDEX import_rows_failed ON import_rows (import_id, line) WHERE state = 2;
