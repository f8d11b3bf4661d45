-- 0005_api_keys_idempotency: API keys (only the SHA-256 of each secret) and
-- the responses kept for Idempotency-Key retries.

CREATE TABLE api_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL DEFAULT '',
    hash       TEXT    NOT NULL UNIQUE,  -- hex SHA-256 of the secret
    hint       TEXT    NOT NULL,         -- the secret's first characters
    scopes     TEXT    NOT NULL,         -- space-separated catalog.Scope values
    owner      INTEGER,                  -- NULL: may write any product
    created_at INTEGER NOT NULL,         -- unix microseconds UTC
    revoked_at INTEGER                   -- NULL while the key is valid
) STRICT;

-- One row per (scope, key): scope is the API key id (or the client address
-- of an anonymous client). done = 0 while the first request runs; its lock
-- lapses at locked_until, so a node that died does not hold the key forever.
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    header       BLOB,
    body         BLOB,
    PRIMARY KEY (scope, key)
) STRICT;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
