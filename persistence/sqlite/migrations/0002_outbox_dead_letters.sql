-- 0002_outbox_dead_letters: the jobs table doubles as a transactional outbox
-- when a broker carries the jobs, and jobs that failed for good are kept as
-- dead letters that an operator can list and revive.

-- NULL: not yet published to a broker (always NULL for the embedded queue).
ALTER TABLE jobs ADD COLUMN published_at INTEGER;

-- DueJobs reads the unpublished rows in the order they fell due.
CREATE INDEX jobs_unpublished ON jobs (available_at, image_id) WHERE published_at IS NULL;

-- One row per image whose job failed for good. It goes with its image: a
-- deleted product leaves no dead letters behind.
CREATE TABLE dead_letters (
    image_id   TEXT    NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    product_id TEXT    NOT NULL,
    code       TEXT    NOT NULL, -- a catalog.Fail* code
    detail     TEXT    NOT NULL,
    attempts   INTEGER NOT NULL, -- attempts made before giving up
    failed_at  INTEGER NOT NULL  -- unix microseconds UTC
) STRICT;

-- ListDeadLetters: newest first.
CREATE INDEX dead_letters_failed ON dead_letters (failed_at DESC, image_id DESC);
