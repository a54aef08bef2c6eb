-- Schema v1: identities, datasets, study-level records, harvesting, outbox, audit.

CREATE TABLE organisations (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL,
    country     text CHECK (country IS NULL OR country ~ '^[A-Z]{2}$'),
    homepage    text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username        text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{2,100}$'),
    display_name    text,
    email           text,
    role            text NOT NULL CHECK (role IN ('admin', 'provider', 'researcher')),
    organisation_id text REFERENCES organisations(id),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'provider' OR organisation_id IS NOT NULL)
);

CREATE TABLE api_tokens (
    id            text PRIMARY KEY,               -- public part of the token, shown in listings
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    token_hash    text NOT NULL,                  -- SHA-256 of the secret part; never the secret
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE harvest_sources (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id  text NOT NULL REFERENCES organisations(id),
    kind             text NOT NULL CHECK (kind IN ('dcat', 'fhir', 'omop', 'dicomweb')),
    name             text NOT NULL DEFAULT '',
    url              text NOT NULL,
    schedule         text,                          -- e.g. '@daily', 'every 6h'; NULL: manual
    validation_mode  text NOT NULL DEFAULT 'lenient' CHECK (validation_mode IN ('strict', 'lenient')),
    dataset_id       uuid,                          -- target dataset for study-level sources
    config           jsonb NOT NULL DEFAULT '{}'::jsonb,
    allow_private    boolean NOT NULL DEFAULT false, -- admin allow-list for SSRF guard
    enabled          boolean NOT NULL DEFAULT true,
    state            jsonb NOT NULL DEFAULT '{}'::jsonb, -- ETag, Last-Modified, cursors
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_run_at      timestamptz
);

CREATE TABLE harvest_runs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source_id    uuid REFERENCES harvest_sources(id) ON DELETE CASCADE,
    organisation_id text NOT NULL REFERENCES organisations(id),
    kind         text NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
    dry_run      boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    pid          integer,
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text
);
CREATE INDEX harvest_runs_source ON harvest_runs (source_id, started_at DESC);

CREATE TABLE harvest_record_errors (
    id         bigserial PRIMARY KEY,
    run_id     uuid NOT NULL REFERENCES harvest_runs(id) ON DELETE CASCADE,
    record     text,                 -- the record's identifier in the source
    location   text,                 -- page URL, file:line, table:row
    severity   text NOT NULL DEFAULT 'error' CHECK (severity IN ('error', 'warning')),
    property   text,
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX harvest_record_errors_run ON harvest_record_errors (run_id);

CREATE TABLE datasets (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id    text NOT NULL REFERENCES organisations(id),
    identifier         text NOT NULL,     -- stable identifier given by the provider
    iri                text,              -- the provider's IRI for the dataset, when given
    status             text NOT NULL DEFAULT 'draft'
                       CHECK (status IN ('draft', 'published', 'withdrawn')),
    title              jsonb NOT NULL DEFAULT '{}'::jsonb,   -- {"en": "...", "de": "..."}
    description        jsonb NOT NULL DEFAULT '{}'::jsonb,
    keywords           text[] NOT NULL DEFAULT '{}',
    themes             text[] NOT NULL DEFAULT '{}',
    health_categories  text[] NOT NULL DEFAULT '{}',
    conditions         text[] NOT NULL DEFAULT '{}',
    modalities         text[] NOT NULL DEFAULT '{}',
    body_parts         text[] NOT NULL DEFAULT '{}',
    manufacturers      text[] NOT NULL DEFAULT '{}',
    countries          text[] NOT NULL DEFAULT '{}',
    sexes              text[] NOT NULL DEFAULT '{}',
    access_rights      text,
    licence            text,
    number_of_individuals integer,
    number_of_studies  integer,
    min_age            integer,
    max_age            integer,
    temporal_start     date,
    temporal_end       date,
    landing_page       text,
    fields             jsonb NOT NULL DEFAULT '{}'::jsonb,   -- further structured properties
    aggregates         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- derived from study-level records
    graph              text,              -- the complete description graph (N-Triples)
    content_hash       text,
    source_id          uuid REFERENCES harvest_sources(id) ON DELETE SET NULL,
    issued             timestamptz,
    modified           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    published_at       timestamptz,
    withdrawn_at       timestamptz,
    version            integer NOT NULL DEFAULT 1,
    UNIQUE (organisation_id, identifier)
);
CREATE INDEX datasets_status ON datasets (status, updated_at, id);
CREATE INDEX datasets_org ON datasets (organisation_id);

ALTER TABLE harvest_sources
    ADD CONSTRAINT harvest_sources_dataset FOREIGN KEY (dataset_id) REFERENCES datasets(id);

CREATE TABLE distributions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id    uuid NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    title         jsonb NOT NULL DEFAULT '{}'::jsonb,
    access_url    text,
    download_url  text,
    media_type    text,
    format        text,
    licence       text,
    byte_size     bigint,
    position      integer NOT NULL DEFAULT 0
);
CREATE INDEX distributions_dataset ON distributions (dataset_id);

-- Study-level records: pseudonymised at ingest, never exposed except as protected aggregates.
CREATE TABLE subjects (
    id           bigserial PRIMARY KEY,
    dataset_id   uuid NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    subject_key  text NOT NULL,        -- keyed HMAC of the source identifier
    sex          text CHECK (sex IS NULL OR sex IN ('female', 'male', 'other', 'unknown')),
    birth_year   smallint,
    content_hash text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, subject_key)
);

CREATE TABLE imaging_studies (
    id              bigserial PRIMARY KEY,
    subject_id      bigint NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    study_key       text NOT NULL,     -- keyed HMAC of the Study Instance UID / resource id
    modalities      text[] NOT NULL DEFAULT '{}',
    body_parts      text[] NOT NULL DEFAULT '{}',
    manufacturer    text,
    series_count    integer,
    instance_count  integer,
    study_month     date,              -- coarsened study date
    age_at_study    smallint,
    content_hash    text,
    UNIQUE (subject_id, study_key)
);

CREATE TABLE conditions (
    id          bigserial PRIMARY KEY,
    subject_id  bigint NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    system      text NOT NULL,        -- snomed, icd10, icdo3-topography, icdo3-morphology, ...
    code        text NOT NULL,
    concept     text,                 -- normalised vocabulary concept, when known
    UNIQUE (subject_id, system, code)
);

-- What the indexer must (re)apply to the search engine; written in the same transaction as the
-- change it describes.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    entity      text NOT NULL CHECK (entity IN ('dataset', 'subject')),
    entity_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE indexer_state (
    name        text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_user_id uuid,
    actor         text,               -- username or 'system' / 'cli'
    organisation_id text,
    action        text NOT NULL,
    target_type   text,
    target_id     text,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action ON audit_log (action, at);
