-- Originals' keys are derived from ids (catalog.OriginalKey) and attempts
-- live on the job row: these image columns were never read.
ALTER TABLE images DROP COLUMN original_key, DROP COLUMN attempts;
