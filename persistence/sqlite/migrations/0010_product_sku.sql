-- 0010_product_sku: a product's optional stock-keeping unit, unique per
-- owner: the key an import upserts by.

ALTER TABLE products ADD COLUMN sku TEXT;
CREATE UNIQUE INDEX products_owner_sku ON products (user_id, sku) WHERE sku IS NOT NULL;
