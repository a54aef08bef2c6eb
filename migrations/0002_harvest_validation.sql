-- Validation reports kept with each dataset (latest), and per-source harvest bookkeeping.

ALTER TABLE datasets ADD COLUMN validation jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE datasets ADD COLUMN last_seen_run uuid;
CREATE INDEX datasets_source ON datasets (source_id) WHERE source_id IS NOT NULL;

ALTER TABLE harvest_sources ADD COLUMN last_run_at timestamptz;
ALTER TABLE harvest_sources ADD CONSTRAINT harvest_sources_url_len CHECK (length(url) <= 4096);
CREATE INDEX harvest_sources_due ON harvest_sources (next_run_at) WHERE enabled;
