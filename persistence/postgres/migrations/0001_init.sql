-- 0001_init: products, their images, the jobs of images (the durable queue
-- of the embedded-style worker pool, and the transactional outbox of a
-- broker) and the dead letters of jobs that failed for good.
--
-- Conventions:
--   * ids are uuid: vitrine issues UUIDv7, kept in 16 bytes rather than 36
--     characters of text. uuid compares bytewise, which is the order of the
--     canonical lower-case text, so keyset pages (id < $after ORDER BY id
--     DESC) walk the very same order as in SQLite, newest first;
--   * times are timestamptz (microseconds), written and read in UTC;
--   * prices are bigint minor units (catalog.Price), never numeric or float;
--   * variants are jsonb, an array of catalog.Variant.

CREATE TABLE products (
    id          uuid        NOT NULL PRIMARY KEY,
    user_id     bigint      NOT NULL,
    name        text        NOT NULL,
    -- Unicode lower case of name, made by the application (Go's
    -- strings.ToLower) so that it does not depend on the database's locale;
    -- q is a LIKE '%…%' on it.
    name_fold   text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    price       bigint      NOT NULL CHECK (price >= 0),
    currency    text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint      NOT NULL
);

-- Every list is ordered by id DESC and pages with id < $after, so each
-- filter has an index that serves it:
--   * no filter (and after): the primary key, read backwards; LIMIT stops it;
--   * user_id, alone or with anything else: (user_id, id DESC) holds one
--     owner's rows in page order;
--   * a price range: (price, id) reads only the rows in range when it is
--     selective (then sorts them by id); for a wide range the planner walks
--     the primary key backwards and stops at LIMIT;
--   * q: the trigram index below finds the candidate rows (pg_trgm supports
--     LIKE '%…%'), or the primary key walk filters them when most match.
CREATE INDEX products_user_id ON products (user_id, id DESC);
CREATE INDEX products_price_id ON products (price, id);

-- The trigram index needs the pg_trgm extension (in contrib, and trusted:
-- the database owner may create it). Without it, q still works, by
-- filtering the rows that the other indexes walk. Rows written since the
-- last (auto)vacuum wait in the GIN index's pending list, which makes the
-- planner shun the index until vacuum merges it.
DO $$
DECLARE
    trgm_schema name;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%): name search will not use an index', SQLERRM;
    END;
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        -- Qualified: the extension may live in another schema (public, say)
        -- than the one these tables are made in.
        EXECUTE format('CREATE INDEX products_name_trgm ON products USING gin (name_fold %I.gin_trgm_ops)', trgm_schema);
    END IF;
END
$$;

CREATE TABLE images (
    id             uuid        NOT NULL PRIMARY KEY,
    product_id     uuid        NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    status         text        NOT NULL,
    error_code     text,                 -- NULL unless processing failed
    error_detail   text,
    content_type   text        NOT NULL DEFAULT '',
    bytes          bigint      NOT NULL DEFAULT 0,
    width          integer     NOT NULL DEFAULT 0,
    height         integer     NOT NULL DEFAULT 0,
    frames         integer     NOT NULL DEFAULT 0,
    sha256         text        NOT NULL DEFAULT '',
    original_key   text        NOT NULL DEFAULT '',
    variants       jsonb       NOT NULL DEFAULT '[]',
    placeholder    text        NOT NULL DEFAULT '',    -- blurhash
    dominant_color text        NOT NULL DEFAULT '',    -- #rrggbb
    animated       boolean     NOT NULL DEFAULT false,
    recipe_version integer     NOT NULL DEFAULT 0,     -- of the recipe that made the variants
    source_url     text        NOT NULL DEFAULT '',    -- where an imported image is fetched from
    attempts       integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    processed_at   timestamptz           -- NULL until processing ended
);

-- The images of a product in their display order; it also serves the
-- ON DELETE CASCADE from products.
CREATE INDEX images_product ON images (product_id, created_at, id);

-- jobs holds one row per image waiting to be processed (or being processed).
-- With the embedded-style queue, a receiver leases a row (lease_until in the
-- future, lease_token naming the delivery) and deletes it when done. With a
-- broker, the rows are an outbox: a relay publishes the unpublished due rows
-- and the consumers delete them when the outcome is stored.
CREATE TABLE jobs (
    image_id     uuid        NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    product_id   uuid        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0, -- starts so far, counted before each runs
    available_at timestamptz NOT NULL,           -- not delivered before this time
    lease_until  timestamptz,                    -- NULL: not leased
    lease_token  bigint,                         -- the delivery holding the lease
    published_at timestamptz,                    -- NULL: not yet published to a broker
    created_at   timestamptz NOT NULL
);

-- Receive claims the job that became available first.
CREATE INDEX jobs_available ON jobs (available_at, image_id);
-- DueJobs reads the unpublished rows in the order they fell due.
CREATE INDEX jobs_unpublished ON jobs (available_at, image_id) WHERE published_at IS NULL;

-- Writers that make a job available (AddImage, Enqueue, Retry, Reschedule,
-- ReviveDeadLetter) wake the receivers of every process, which LISTEN on
-- vitrine_jobs. The payload is the schema, so that receivers of another
-- schema of the same database ignore it. Notifications are sent at commit.
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vitrine_jobs', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF available_at ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();

-- One row per image whose job failed for good. It goes with its image: a
-- deleted product leaves no dead letters behind.
CREATE TABLE dead_letters (
    image_id   uuid        NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    product_id uuid        NOT NULL,
    code       text        NOT NULL, -- a catalog.Fail* code
    detail     text        NOT NULL,
    attempts   integer     NOT NULL, -- attempts made before giving up
    failed_at  timestamptz NOT NULL
);

-- ListDeadLetters: newest first.
CREATE INDEX dead_letters_failed ON dead_letters (failed_at DESC, image_id DESC);
