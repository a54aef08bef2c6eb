-- DCAT export fragments (issue 7) are now stored LZ4-compressed by the application, behind a
-- codec byte (catalogue/store/exports.py: pack/unpack). At about 2 KB they stay in the row:
-- no TOAST compression attempt below 8160 bytes (PostgreSQL's pglz decompressed at about
-- 300 MB/s and capped the export), and STORAGE MAIN keeps a larger one in the row when it
-- fits. Fragments are a cache: the old ones are dropped and rendered again on demand.

TRUNCATE dataset_exports;
ALTER TABLE dataset_exports ALTER COLUMN body SET STORAGE MAIN;
ALTER TABLE dataset_exports SET (toast_tuple_target = 8160);
