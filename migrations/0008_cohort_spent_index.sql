-- The ε a researcher or an organisation spent in the budget window is summed over the entries
-- that were charged only (epsilon > 0), read from the index alone: refused, repeated, invalid
-- and failed questions cost nothing and no longer make each later question slower (before,
-- every entry of the window was read from the table, so a client asking again and again after
-- its budget ran out slowed down its own organisation's questions).

CREATE INDEX cohort_queries_user_spent ON cohort_queries (user_id, at) INCLUDE (epsilon)
    WHERE epsilon > 0;
CREATE INDEX cohort_queries_org_spent ON cohort_queries (organisation_id, at) INCLUDE (epsilon)
    WHERE epsilon > 0;
