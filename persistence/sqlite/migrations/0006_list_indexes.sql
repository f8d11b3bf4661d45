-- 0006_list_indexes: lists read ids from indexes alone, and q is served by a
-- trigram index.
--
-- Lists select ids first (ListProductIDs); the products come from the hot
-- cache, or in one batch from the table for those it lacks. So every list
-- shape should be answered from an index without reading the table:
--   * none, after: the primary key's index, walked backwards;
--   * user_id: products_user_id, now (user_id, id, price, name_fold);
--   * a price range: products_price_id (price, id);
--   * q: for a word that many names hold, the newest rows are walked in
--     products_id_name (id, name_fold, price) and filtered, which finds a
--     page after a few hundred entries; for a rare word (or when that walk
--     does not fill the page), the trigram index below finds the few rows
--     that hold it.
CREATE INDEX products_id_name ON products (id, name_fold, price);

-- An owner's rows with a second filter (a price range, q) are read from the
-- index alone too.
DROP INDEX products_user_id;
CREATE INDEX products_user_id ON products (user_id, id, price, name_fold);

-- A trigram index of name_fold (already folded to lower case by the
-- application, so case_sensitive 1 keeps its exact meaning): MATCH with
-- a quoted phrase of three or more characters finds the rows whose name
-- holds it as a substring. External content: the names live in products
-- only, and the triggers keep the index in step.
CREATE VIRTUAL TABLE products_fts USING fts5(
    name_fold,
    content = 'products',
    content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 1'
);
INSERT INTO products_fts (products_fts) VALUES ('rebuild');

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name_fold) VALUES (new.rowid, new.name_fold);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name_fold) VALUES ('delete', old.rowid, old.name_fold);
END;
-- Every write of a product sets name_fold; only a change touches the index.
CREATE TRIGGER products_fts_update AFTER UPDATE OF name_fold ON products
WHEN old.name_fold IS NOT new.name_fold BEGIN
    INSERT INTO products_fts (products_fts, rowid, name_fold) VALUES ('delete', old.rowid, old.name_fold);
    INSERT INTO products_fts (rowid, name_fold) VALUES (new.rowid, new.name_fold);
END;
