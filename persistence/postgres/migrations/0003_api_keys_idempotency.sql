-- 0003_api_keys_idempotency: API keys (only the SHA-256 of each secret) and
-- the responses kept for Idempotency-Key retries, shared by every node.

CREATE TABLE api_keys (
    id         uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL DEFAULT '',
    hash       text        NOT NULL UNIQUE,  -- hex SHA-256 of the secret
    hint       text        NOT NULL,         -- the secret's first characters
    scopes     text[]      NOT NULL,
    owner      bigint,                       -- NULL: may write any product
    created_at timestamptz NOT NULL,
    revoked_at timestamptz                   -- NULL while the key is valid
);

-- One row per (scope, key): scope is the API key id (or the client address
-- of an anonymous client). done is false while the first request runs; its
-- lock lapses at locked_until, so a node that died does not hold the key
-- forever.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  text        NOT NULL,
    done         boolean     NOT NULL DEFAULT false,
    locked_until timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    status       integer     NOT NULL DEFAULT 0,
    header       bytea,
    body         bytea,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
