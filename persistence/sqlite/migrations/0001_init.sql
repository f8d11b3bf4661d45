-- 0001_init: products, their images, and the durable queue of image jobs.
--
-- Conventions:
--   * ids are UUIDv7 in their canonical text form, so they sort by creation
--     time and "newest first" is simply ORDER BY id DESC;
--   * times are INTEGER unix microseconds in UTC;
--   * prices are INTEGER minor units (catalog.Price), never REAL;
--   * tables are STRICT, so a value of the wrong type is refused.

CREATE TABLE products (
    id          TEXT    NOT NULL PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    name_fold   TEXT    NOT NULL, -- Unicode lower case of name, searched by instr()
    description TEXT    NOT NULL DEFAULT '',
    price       INTEGER NOT NULL CHECK (price >= 0),
    currency    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL
) STRICT;

-- Every list is ordered by id DESC and pages with id < :after, so each index
-- ends in id and a filter plus the keyset order is one index range:
--   * no filter, or only q: the primary-key index on id, read backwards;
--     q cannot use an index (substring), it filters the rows walked;
--   * user_id (alone or with other filters): (user_id, id) gives the rows of
--     one owner already in page order, so LIMIT stops the scan early;
--   * price range (without user_id): (price, id) lets the planner read only
--     the rows in range when the range is selective; it then sorts them by
--     id. For a wide range it may prefer walking the id index instead.
CREATE INDEX products_user_id ON products (user_id, id);
CREATE INDEX products_price_id ON products (price, id);

CREATE TABLE images (
    id           TEXT    NOT NULL PRIMARY KEY,
    product_id   TEXT    NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    status       TEXT    NOT NULL,
    error_code   TEXT,             -- NULL unless processing failed
    error_detail TEXT,
    content_type TEXT    NOT NULL DEFAULT '',
    bytes        INTEGER NOT NULL DEFAULT 0,
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    frames       INTEGER NOT NULL DEFAULT 0,
    sha256       TEXT    NOT NULL DEFAULT '',
    original_key TEXT    NOT NULL DEFAULT '',
    variants     TEXT    NOT NULL DEFAULT '[]', -- JSON array of catalog.Variant
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    processed_at INTEGER           -- NULL until processing ended
) STRICT;

-- The images of a product in their display order; it also serves the
-- ON DELETE CASCADE from products.
CREATE INDEX images_product ON images (product_id, created_at, id);

-- jobs holds one row per image waiting to be processed (or being processed,
-- while lease_until is in the future). A row is deleted when its job is
-- acknowledged.
CREATE TABLE jobs (
    image_id     TEXT    NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    product_id   TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0, -- deliveries so far, counted when claimed
    available_at INTEGER NOT NULL,           -- not delivered before this time
    lease_until  INTEGER,                    -- NULL: not leased
    created_at   INTEGER NOT NULL
) STRICT;

-- Receive claims the job that became available first.
CREATE INDEX jobs_available ON jobs (available_at, image_id);
