-- 0010_imports: catalog imports. A file's rows are stored when it is
-- accepted, then applied one at a time by the runner that leases the
-- import; each row records its outcome.

CREATE TABLE imports (
    id          uuid        NOT NULL PRIMARY KEY,
    owner       bigint      NOT NULL, -- the importing key's user_id, 0 for any
    format      text        NOT NULL,
    status      text        NOT NULL,
    total       integer     NOT NULL,
    applied     integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz,
    lease_until timestamptz,          -- a runner holds it until then
    lease_token bigint
);
-- Runners look for imports that are not completed, oldest first.
CREATE INDEX imports_open ON imports (created_at) WHERE status <> 'completed';

CREATE TABLE import_rows (
    import_id uuid    NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line      integer NOT NULL,
    doc       text    NOT NULL,          -- the row's product document (JSON)
    sku       text,                      -- its SKU: the last row of a SKU is applied
    state     smallint NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)), -- pending, applied, failed
    error     jsonb,                     -- catalog.ImportRowError of a failed row
    PRIMARY KEY (import_id, line)
);
CREATE INDEX import_rows_pending ON import_rows (import_id, line) WHERE state = 0;
CREATE INDEX import_rows_sku ON import_rows (import_id, sku, line) WHERE sku IS NOT NULL;
CREATE INDEX import_rows_failed ON import_rows (import_id, line) WHERE state = 2;
