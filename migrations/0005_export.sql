-- DCAT-AP export and OAI-PMH (issue 7): rendered fragments of each dataset per export format,
-- so that exports concatenate stored bytes instead of re-serialising the catalogue; indexes for
-- keyset paging, incremental harvesting (modified since) and lookups by dataset IRI.

CREATE TABLE dataset_exports (
    dataset_id  uuid NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    format      text NOT NULL,
    render_key  text NOT NULL,    -- renderer version, dataset version and change time, base URI
    body        bytea NOT NULL,
    PRIMARY KEY (dataset_id, format)
);

CREATE INDEX datasets_published_id ON datasets (id) WHERE status = 'published';
CREATE INDEX datasets_updated ON datasets (updated_at, id);
CREATE INDEX datasets_iri ON datasets (iri) WHERE iri IS NOT NULL;

-- A run that could not read its whole source (a broken page, a paging loop, an OAI error after
-- the first page) still ends 'completed' with what it read; it must not become the starting
-- point of the next incremental run, or the pages it missed would never be asked for again.
ALTER TABLE harvest_runs ADD COLUMN complete boolean NOT NULL DEFAULT true;
