-- 0003_image_render_fields: what processing and imports record of an image
-- besides its variants.

ALTER TABLE images ADD COLUMN placeholder    TEXT    NOT NULL DEFAULT ''; -- blurhash
ALTER TABLE images ADD COLUMN dominant_color TEXT    NOT NULL DEFAULT ''; -- #rrggbb
ALTER TABLE images ADD COLUMN animated       INTEGER NOT NULL DEFAULT 0 CHECK (animated IN (0, 1));
ALTER TABLE images ADD COLUMN recipe_version INTEGER NOT NULL DEFAULT 0;  -- of the recipe that made the variants
ALTER TABLE images ADD COLUMN source_url     TEXT    NOT NULL DEFAULT ''; -- where an imported image is fetched from
