-- A harvest source can now be deleted (DELETE /api/v1/harvest/sources/{id}). Its run history
-- (counts and per-record errors) is kept for audit, as a one-shot run's is: the run's source
-- becomes NULL instead of the runs being deleted with it.

ALTER TABLE harvest_runs DROP CONSTRAINT harvest_runs_source_id_fkey;
ALTER TABLE harvest_runs ADD CONSTRAINT harvest_runs_source_id_fkey
    FOREIGN KEY (source_id) REFERENCES harvest_sources(id) ON DELETE SET NULL;
