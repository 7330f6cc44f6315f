ALTER TABLE chat DROP COLUMN fallback_at, DROP COLUMN lang, DROP COLUMN interests;
