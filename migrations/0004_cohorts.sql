-- Cohort-feasibility counts (issue 6): the ledger of count queries (audit log and privacy
-- budget in one: who asked which canonical question, on which data version, how many cells
-- were released and how much ε it cost), budget resets by administrators, and the version of
-- the study-level data the search engine holds (noise is keyed on it).

CREATE TABLE cohort_queries (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    user_id         uuid REFERENCES users(id) ON DELETE SET NULL,
    username        text,
    organisation_id text,
    token_id        text,
    outcome         text NOT NULL CHECK (outcome IN ('answered', 'repeated', 'refused', 'invalid')),
    question_hash   text,
    question        jsonb,             -- the canonical question; never record data
    data_version    bigint,
    noise_key       text,              -- fingerprint of the noise secret (a new secret: new noise)
    cells           integer NOT NULL DEFAULT 0,
    released        integer NOT NULL DEFAULT 0,   -- numbers released (not suppressed)
    epsilon         double precision NOT NULL DEFAULT 0,
    message         text
);
CREATE INDEX cohort_queries_user ON cohort_queries (user_id, at);
CREATE INDEX cohort_queries_org ON cohort_queries (organisation_id, at);
CREATE INDEX cohort_queries_question ON cohort_queries (question_hash, data_version, noise_key)
    WHERE outcome IN ('answered', 'repeated');

CREATE TABLE cohort_budget_resets (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    scope      text NOT NULL CHECK (scope IN ('user', 'organisation')),
    scope_id   text NOT NULL,
    by_user    uuid,
    reason     text
);
CREATE INDEX cohort_budget_resets_scope ON cohort_budget_resets (scope, scope_id, at);

INSERT INTO indexer_state (name, value) VALUES ('subjects_data_version', '0'::jsonb)
    ON CONFLICT (name) DO NOTHING;
