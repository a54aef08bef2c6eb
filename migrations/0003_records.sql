-- Study-level records (issue 4): which source wrote a subject, one condition row per coding of
-- one source condition (keyed pseudonym of the source record), hashes of the source records so
-- that unchanged records are skipped, and the lookups harvests and aggregates need.

ALTER TABLE subjects ADD COLUMN source_id uuid REFERENCES harvest_sources(id) ON DELETE SET NULL;

ALTER TABLE imaging_studies ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX imaging_studies_key ON imaging_studies (study_key);
CREATE INDEX subjects_dataset ON subjects (dataset_id, id);

ALTER TABLE conditions ADD COLUMN condition_key text NOT NULL DEFAULT '';
ALTER TABLE conditions ADD COLUMN content_hash text;
ALTER TABLE conditions DROP CONSTRAINT conditions_subject_id_system_code_key;
ALTER TABLE conditions ADD CONSTRAINT conditions_record_code UNIQUE (subject_id, condition_key, system, code);
CREATE INDEX conditions_key ON conditions (condition_key);
