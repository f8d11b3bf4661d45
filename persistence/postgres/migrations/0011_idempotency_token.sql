-- 0011_idempotency_token: each reservation of an Idempotency-Key carries a
-- token, and only that reservation may complete or release the record: a
-- request whose lock lapsed and was taken over by a retry must not store
-- its answer over the retry's, nor drop the retry's lock. Records made
-- before have the empty token; they finish or lapse as before.

ALTER TABLE idempotency_keys ADD COLUMN token text NOT NULL DEFAULT '';
