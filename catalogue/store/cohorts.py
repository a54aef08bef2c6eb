"""The cohort query ledger: audit log and privacy budget of cohort counts in one table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from catalogue.model.identity import Identity
from catalogue.store.db import Connection, is_uuid

#: ε spent by one user or organisation (``column`` = id, window, scope, scope id) in the rolling
#: window since its last reset. `user_id = uuid` (not `user_id::text`): the partial covering
#: indices on (user_id, at) and (organisation_id, at) of charged entries are used, so the cost
#: grows neither with the audit log nor with questions that cost nothing (refused, repeated,
#: invalid, failed). No organisation (NULL) matches nothing.
_SPENT = ("SELECT coalesce(sum(epsilon), 0) FROM cohort_queries WHERE {column} = %s "
          "AND epsilon > 0 AND at > now() - %s AND at > coalesce((SELECT max(at) FROM "
          "cohort_budget_resets WHERE scope = %s AND scope_id = %s), '-infinity')")


class CohortLedger:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock(self, identity: Identity) -> None:
        """Serialise budget decisions of one researcher and of their organisation."""
        scopes = [f"cohort-budget:user:{identity.user_id}",
                  *([f"cohort-budget:org:{identity.organisation_id}"]
                    if identity.organisation_id else [])]
        # one round trip; the user's lock first, then the organisation's, as before
        self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(s, 0)) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, n) ORDER BY n", (scopes,))

    def standing(self, identity: Identity, question_hash: str, data_version: int,
                 noise_key: str, window: timedelta) -> tuple[bool, float, float]:
        """What a count decides on, under :meth:`lock`, in one round trip:

        - whether this canonical question was answered on this data version, with noise from
          this secret, to this researcher or their organisation (the same numbers again reveal
          nothing new; after a new secret they would be new numbers). Other organisations'
          questions are not looked at: a free repeat would tell what they asked;
        - ε the researcher spent, and ε their organisation spent (0 without one)."""
        organisation = identity.organisation_id
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM cohort_queries WHERE question_hash = %s "
            "  AND data_version = %s AND noise_key = %s "
            "  AND outcome IN ('answered', 'repeated') AND (user_id = %s OR "
            "  (%s::text IS NOT NULL AND organisation_id = %s))) AS repeated, "
            f"({_SPENT.format(column='user_id')}) AS user_spent, "
            f"({_SPENT.format(column='organisation_id')}) AS organisation_spent",
            (question_hash, data_version, noise_key, identity.user_id, organisation,
             organisation, identity.user_id, window, "user", str(identity.user_id),
             organisation, window, "organisation", organisation)).fetchone()
        assert row is not None
        return (bool(row["repeated"]), float(row["user_spent"]),
                float(row["organisation_spent"]))

    def locked_standing(self, identity: Identity, question_hash: str, data_version: int,
                        noise_key: str, window: timedelta) -> tuple[bool, float, float]:
        """:meth:`lock`, then :meth:`standing`, sent together in one round trip (a pipeline):
        the server runs the standing statement after the locks are held, so it sees every
        decision committed before them (one statement holding both would read a snapshot taken
        before it waited for the locks)."""
        with self.conn.pipeline():
            self.lock(identity)
            return self.standing(identity, question_hash, data_version, noise_key, window)

    def spent(self, scope: str, scope_id: str, window: timedelta) -> float:
        """ε spent by a user or an organisation in the rolling window (since its last reset)."""
        if scope == "user" and not is_uuid(scope_id):
            return 0.0  # no question can be recorded under a user id that is not a uuid
        column = "user_id" if scope == "user" else "organisation_id"
        row = self.conn.execute(f"SELECT ({_SPENT.format(column=column)}) AS spent",
                                (scope_id, window, scope, scope_id)).fetchone()
        assert row is not None
        return float(row["spent"])

    def record(self, identity: Identity, outcome: str, *, question_hash: str | None = None,
               question: Any = None, data_version: int | None = None,
               noise_key: str | None = None, cells: int = 0, released: int = 0,
               epsilon: float = 0.0, message: str | None = None) -> Any:
        """One entry of the ledger; returns the cursor, whose row is the entry's id once the
        statement has been sent (in a pipeline the entry and the commit travel together and
        the id is read after)."""
        return self.conn.execute(
            "INSERT INTO cohort_queries (user_id, username, organisation_id, token_id, outcome, "
            "question_hash, question, data_version, noise_key, cells, released, epsilon, "
            "message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (identity.user_id, identity.username, identity.organisation_id, identity.token_id,
             outcome, question_hash, None if question is None else Jsonb(question),
             data_version, noise_key, cells, released, epsilon, message))

    def settle(self, entry: int, outcome: str, *, released: int = 0,
               message: str | None = None) -> None:
        """Complete a ``pending`` entry, recorded (and charged) before its counts were known:
        ``answered`` or ``repeated`` with the numbers released, or ``invalid`` or ``failed``
        with nothing released and nothing charged."""
        if outcome in ("answered", "repeated"):
            self.conn.execute("UPDATE cohort_queries SET outcome = %s, released = %s "
                              "WHERE id = %s", (outcome, released, entry))
        else:
            self.conn.execute("UPDATE cohort_queries SET outcome = %s, epsilon = 0, "
                              "released = 0, message = %s WHERE id = %s",
                              (outcome, message, entry))

    def reset(self, scope: str, scope_id: str, by: Identity, reason: str | None) -> None:
        self.conn.execute(
            "INSERT INTO cohort_budget_resets (scope, scope_id, by_user, reason) "
            "VALUES (%s, %s, %s, %s)", (scope, scope_id, by.user_id, reason))

    def queries(self, limit: int, before_id: int | None = None, username: str | None = None,
                organisation_id: str | None = None) -> list[dict[str, Any]]:
        clauses, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
        if before_id:
            clauses.append("id < %s")
            params.append(before_id)
        if username:
            clauses.append("username = %s")
            params.append(username)
        if organisation_id:
            clauses.append("organisation_id = %s")
            params.append(organisation_id)
        params.append(limit)
        rows = self.conn.execute(
            f"SELECT id, at, username, organisation_id, token_id, outcome, question_hash, "
            f"question, data_version, cells, released, epsilon, message FROM cohort_queries "
            f"WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT %s", params).fetchall()
        return [dict(r) for r in rows]

    def spenders(self, window: timedelta) -> list[dict[str, Any]]:
        """Users who asked count questions in the window (for the admin budget overview)."""
        rows = self.conn.execute(
            "SELECT DISTINCT q.user_id::text AS user_id, u.username, u.organisation_id "
            "FROM cohort_queries q JOIN users u ON u.id = q.user_id "
            "WHERE q.at > now() - %s ORDER BY u.username", (window,)).fetchall()
        return [dict(r) for r in rows]
