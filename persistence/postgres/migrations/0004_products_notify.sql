-- 0004_products_notify: every process that keeps pages of list ids (see
-- persistence/pagecache) hears, on vitrine_products, of each write that may
-- change a page: a product created or deleted, or its owner, price or name
-- changed. Image changes, which rewrite those columns with the same values,
-- are not announced. The payload is the schema, as for vitrine_jobs;
-- notifications are sent at commit, and one a transaction.
CREATE FUNCTION products_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vitrine_products', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER products_notify_insert_delete AFTER INSERT OR DELETE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION products_notify();

CREATE TRIGGER products_notify_update AFTER UPDATE ON products
    FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.price IS DISTINCT FROM NEW.price
          OR OLD.name_fold IS DISTINCT FROM NEW.name_fold)
    EXECUTE FUNCTION products_notify();
