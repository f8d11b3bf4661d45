-- 0008_gallery: a product's images are a gallery, ordered by position
-- (0-based, dense: 0 is the primary image), each with an alt text; a failed
-- image records whether trying again may help; an image may have a focal
-- point that its cover crops are made around.

ALTER TABLE images ADD COLUMN position        integer NOT NULL DEFAULT 0;
ALTER TABLE images ADD COLUMN alt             text    NOT NULL DEFAULT '';
ALTER TABLE images ADD COLUMN error_retryable boolean NOT NULL DEFAULT false;
-- The focal point, fractions of the width and height (both NULL: none).
ALTER TABLE images ADD COLUMN focal_x double precision CHECK (focal_x BETWEEN 0 AND 1);
ALTER TABLE images ADD COLUMN focal_y double precision CHECK (focal_y BETWEEN 0 AND 1);

-- The order images had: by creation.
UPDATE images SET position = r.n - 1
FROM (SELECT id, row_number() OVER (PARTITION BY product_id ORDER BY created_at, id) AS n FROM images) AS r
WHERE images.id = r.id;

-- Failures of the service, not of the file: a timeout, storage, and every
-- failure recorded after the worker gave up retrying.
UPDATE images SET error_retryable = true
WHERE error_code IN ('storage_unavailable', 'timeout') OR error_detail LIKE 'gave up after %';

-- The images of a product in gallery order; it also serves the ON DELETE
-- CASCADE from products.
DROP INDEX images_product;
CREATE INDEX images_product ON images (product_id, position, created_at, id);
