-- Cohort counts (issue 6) charge the privacy budget when the question is accepted, while the
-- engine counts: the entry is 'pending' (charged, not yet a question answered: a concurrent
-- repeat of it is not free) until the numbers are released, then 'answered' or 'repeated'. A
-- question the engine could not answer (unavailable, timed out) is settled as 'failed':
-- nothing released, nothing charged.

ALTER TABLE cohort_queries DROP CONSTRAINT cohort_queries_outcome_check;
ALTER TABLE cohort_queries ADD CONSTRAINT cohort_queries_outcome_check
    CHECK (outcome IN ('answered', 'repeated', 'refused', 'invalid', 'failed', 'pending'));
