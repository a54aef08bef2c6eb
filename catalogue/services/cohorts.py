"""Cohort-feasibility counts: parse and canonicalise the question, count on the search engine,
release protected numbers, account for the privacy budget, audit every question."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, NamedTuple

from catalogue.cohorts.criteria import (
    SINGLE_VALUED,
    Cell,
    Context,
    Question,
    buckets,
    dumps,
    parse_question,
    plan,
    to_filter,
)
from catalogue.errors import NotFound, SearchUnavailable, TooManyRequests, ValidationError
from catalogue.model.identity import Identity, Role
from catalogue.privacy.disclosure import (
    NOISE_DERIVATION,
    DisclosurePolicy,
    Noise,
    release_pairs,
)
from catalogue.search.base import SearchBackend
from catalogue.search.indexer import data_version
from catalogue.search.mappings import load_definition
from catalogue.search.query import CountRequest, Filter, Not, Terms
from catalogue.services.permissions import require_admin, require_role
from catalogue.store.audit import audit
from catalogue.store.cohorts import CohortLedger
from catalogue.store.db import Database

log = logging.getLogger(__name__)

#: seconds the catalogue metadata behind cells (datasets, organisations, countries) is reused
#: without checking it
CONTEXT_TTL = 5.0

#: what the cells depend on, in one row: every INSERT or UPDATE gives its row a new ``xmin``
#: (so the sum moves), every DELETE changes a count
CONTEXT_STAMP = (
    "SELECT d.n AS datasets, d.x AS datasets_xmin, o.n AS organisations, "
    "o.x AS organisations_xmin FROM "
    "(SELECT count(*) AS n, coalesce(sum(xmin::text::bigint), 0) AS x FROM datasets) AS d, "
    "(SELECT count(*) AS n, coalesce(sum(xmin::text::bigint), 0) AS x FROM organisations) AS o")


class _Decision(NamedTuple):
    entry: int               # the ledger entry (settled once the counts are in)
    version: int             # the data version the question is answered at
    repeated: bool
    cost: float
    budget: dict[str, Any]
    refused: str | None      # why the budget refused the question, if it did


class _Settling:
    """Answered questions whose ledger entries are not settled yet, in this process, by
    canonical question and by whose answers make it a free repeat (``_repeat_scope``). The
    same question asked again in that scope waits for the settlement, so that the repeat is
    recognised and free; after ``SETTLE_WAIT`` seconds (the answer's response was never
    closed: its server did not say it was sent) it settles the entry itself. Each settlement
    runs once, whoever runs it."""

    def __init__(self) -> None:
        self._open: dict[str, list[Callable[[], None]]] = {}
        self._changed = threading.Condition()

    def add(self, key: str, settle: Callable[[], None]) -> Callable[[], None]:
        """Register ``settle``; returns what runs it (once: later calls do nothing)."""
        ran = threading.Lock()

        def once() -> None:
            if not ran.acquire(blocking=False):
                return
            try:
                settle()
            finally:
                with self._changed:
                    waiting = self._open.get(key, [])
                    if once in waiting:
                        waiting.remove(once)
                    if not waiting:
                        self._open.pop(key, None)
                    self._changed.notify_all()

        with self._changed:
            self._open.setdefault(key, []).append(once)
        return once

    def wait_for(self, key: str) -> None:
        with self._changed:
            if key not in self._open:
                return
            if self._changed.wait_for(lambda: key not in self._open, SETTLE_WAIT):
                return
            late = list(self._open.get(key, []))
        for settle in late:
            settle()

    def drain(self) -> None:
        """Settle everything still open (the process is stopping)."""
        with self._changed:
            late = [settle for waiting in self._open.values() for settle in waiting]
        for settle in late:
            settle()


#: seconds a question waits for the settlement of the same question answered just before
SETTLE_WAIT = 2.0


def _repeat_scope(identity: Identity, digest: str) -> str:
    """Whose earlier answers to a question make it a free repeat: the organisation's (its
    researchers'), else the researcher's own (see ``CohortLedger.standing``)."""
    who = (f"organisation:{identity.organisation_id}" if identity.organisation_id
           else f"user:{identity.user_id}")
    return f"{who}|{digest}"


class _CachedContext(NamedTuple):
    read_at: float   # time.monotonic() of the last check
    stamp: Any       # the CONTEXT_STAMP row the context was read under
    context: Context


def published_only(ctx: Context) -> tuple[Filter, ...]:
    """Only published datasets are counted: the records of drafts and withdrawn datasets are
    excluded (usually a few ids, cheaper than listing every published one)."""
    return (Not(Terms("dataset_id", ctx.unpublished)),) if ctx.unpublished else ()


class CohortService:
    def __init__(self, db: Database, search: SearchBackend | None, secret: str,
                 policy: DisclosurePolicy | None = None) -> None:
        self.db = db
        self.search = search
        self.secret = secret
        self.policy = policy or DisclosurePolicy()
        self.definition = load_definition("subjects")
        self._context: _CachedContext | None = None
        self._settling = _Settling()
        #: settles answered questions in order, off the requests' threads (``settle_later``)
        self._settler = ThreadPoolExecutor(1, thread_name_prefix="catalogue-cohort-settle")
        #: a fingerprint of the noise secret and of how noise is drawn from it: answers are
        #: repeats (free) only under the same secret and derivation (after an upgrade that
        #: changes the draws, a repeated question is charged like a new one)
        self.noise_key = hmac.new(secret.encode(),
                                  b"cohort-noise-fingerprint" + NOISE_DERIVATION.encode(),
                                  hashlib.sha256).hexdigest()[:16]

    # -- questions ----------------------------------------------------------------------------
    def context(self) -> Context:
        """Published datasets, organisations and countries. At most every few seconds
        (``CONTEXT_TTL``) a one-row stamp of those tables is compared with the one the context
        was read under, and the context is read again only when it differs: so a newly
        published dataset becomes a cell within that delay, and an unchanged catalogue keeps
        its context and the cells made from it (reading a thousand datasets again took 10-20
        ms, paid every few seconds by whichever question came then)."""
        now = time.monotonic()
        cached = self._context
        if cached is not None and now - cached.read_at < CONTEXT_TTL:
            return cached.context
        with self.db.transaction() as conn:
            stamp = conn.execute(CONTEXT_STAMP).fetchone()
            if cached is not None and stamp == cached.stamp:
                context = cached.context
            else:
                context = self._read_context(conn)
        self._context = _CachedContext(now, stamp, context)
        return context

    def expire_context(self) -> None:
        """Let the next question check the catalogue metadata now (tests)."""
        if self._context is not None:
            self._context = self._context._replace(read_at=-math.inf)

    def _read_context(self, conn: Any) -> Context:
        datasets = tuple(r["id"] for r in conn.execute(
            "SELECT id::text AS id FROM datasets WHERE status = 'published' ORDER BY 1"))
        providers = tuple(r["id"] for r in conn.execute(
            "SELECT id FROM organisations ORDER BY id"))
        countries = tuple(r["c"] for r in conn.execute(
            "SELECT DISTINCT unnest(countries) AS c FROM datasets "
            "WHERE status = 'published' ORDER BY 1"))
        unpublished = tuple(r["id"] for r in conn.execute(
            "SELECT id::text AS id FROM datasets WHERE status <> 'published' ORDER BY 1"))
        return Context(datasets, providers, countries, self.definition, unpublished)

    def close(self) -> None:
        """Settle what is waiting to be settled, then stop."""
        self._settler.shutdown(wait=True)
        self._settling.drain()

    def settle_later(self, settle: Callable[[], None]) -> None:
        """Run an answer's ``settle`` (see :meth:`answer`) in the settling thread: the request's
        thread is free for the connection's next request, and a question repeated meanwhile
        waits for the settlement anyway."""
        try:
            self._settler.submit(settle)
        except RuntimeError:  # shut down: settle here
            settle()

    def count(self, identity: Identity, body: Any) -> dict[str, Any]:
        """Answer one count question for a researcher (see :meth:`answer`), settled."""
        answer, settle = self.answer(identity, body)
        settle()
        return answer

    def answer(self, identity: Identity, body: Any
               ) -> tuple[dict[str, Any], Callable[[], None]]:
        """Answer one count question for a researcher (see ``catalogue.cohorts.criteria``),
        and what settles its ledger entry: the API calls it once the answer is sent (the
        charge is committed before any number is released; settling records that the numbers
        went out and how many).

        While the engine counts (the request is sent, its answer read later:
        ``SearchBackend.start_count``), this thread reads the data version, decides and
        records the budget (the charge is committed under the researcher's and
        the organisation's locks, so concurrent questions see it; the entry is ``pending``,
        so a concurrent repeat is charged too, not free) and draws the noise (which never
        depends on the counts). Then the numbers are released, and the entry is settled
        ``answered`` or ``repeated`` with how many were; a question the engine refuses is
        settled ``invalid``, one it could not answer ``failed``, both uncharged. So the charge
        is never behind what was released."""
        require_role(identity, Role.RESEARCHER)
        if self.search is None:
            raise SearchUnavailable()
        search = self.search
        ctx = self.context()
        try:  # anything refused, while parsing, planning or counting, is audited
            question = parse_question(body, ctx)
            cells, engine = plan(question, ctx)
            request = CountRequest(
                "studies", engine,
                filters=(*published_only(ctx), to_filter(question.criteria, ctx)),
                item_cap=self.policy.study_cap)
        except ValidationError as exc:
            self.refused(identity, exc.message)
            raise
        scales = self.scales(question, ctx)
        with search.start_count(search.logical_name("subjects"), request) as counting:
            decision = self._decide(identity, question, len(cells))
            version = decision.version
            total_noise, cell_noise = self._noise(version, question, cells, scales)
            groups: list[dict[str, Any]] = [dict(cell.labels) for cell in cells[1:]]
            try:
                counts = counting.result()
            except ValidationError as exc:
                self._settle_unanswered(decision, "invalid", exc.message[:500])
                raise
            except Exception:
                self._settle_unanswered(decision, "failed", "the search engine did not answer")
                raise
        if decision.refused is not None:
            raise TooManyRequests(decision.refused)
        (total,) = release_pairs(counts[:1], total_noise, self.policy)
        pairs = release_pairs(counts[1:], cell_noise, self.policy)
        for group, (subjects, studies) in zip(groups, pairs, strict=True):
            group["subjects"], group["studies"] = subjects, studies
        numbers = sum((not s["suppressed"]) + (not t["suppressed"]) for s, t in [total, *pairs])

        def settle_entry() -> None:
            try:
                self._settle(decision.entry, "repeated" if decision.repeated else "answered",
                             released=numbers)
            except Exception:  # the entry stays pending: charged, the conservative side
                log.exception("could not settle an answered cohort question")

        settle = self._settling.add(_repeat_scope(identity, question.digest()), settle_entry)
        return {
            "question": question.canonical(),
            "total": {"subjects": total[0], "studies": total[1]},
            "group_by": list(question.group_by),
            "groups": groups,
            "parameters": {
                "epsilon": self.policy.epsilon, "charged": decision.cost,
                "repeated": decision.repeated,
                "noise_scale": scales, "rounding": self.policy.rounding,
                "floor": self.policy.floor, "study_cap": self.policy.study_cap,
                "data_version": version, "mechanism": "laplace",
            },
            "budget": decision.budget,
        }, settle

    def _decide(self, identity: Identity, question: Question, cells: int) -> _Decision:
        """Read the data version, then charge the question or refuse it: the locks, the
        standing read (which runs after the locks are held, so it sees every charge committed
        before), the entry and the commit, pipelined.

        The version is read once the count request is out: a version older than the data the
        engine counts then needs the read to fall between a change becoming searchable and
        the commit of its version bump (the indexer bumps it just after), with the engine's
        snapshot taken before the read; read before the request was sent, the snapshot could
        also come after it.

        The same question answered in this process an instant before to the researcher or
        their organisation, whose entry is not settled yet, is waited for: so that repeating
        it is free (see :meth:`answer`). Other organisations' questions are not waited for: the
        wait would tell what they asked."""
        digest = question.digest()
        window = timedelta(days=self.policy.window_days)
        refused: str | None = None
        self._settling.wait_for(_repeat_scope(identity, digest))
        with self.db.transaction() as conn:
            version = data_version(conn)
            with conn.pipeline():
                ledger = CohortLedger(conn)
                repeated, user_spent, organisation_spent = ledger.locked_standing(
                    identity, digest, version, self.noise_key, window)
                cost = 0.0 if repeated else self.policy.epsilon
                budget = self._budget(ledger, identity, window,
                                      spent=(user_spent, organisation_spent))
                for scope, state in budget.items():
                    if state is not None and cost > state["remaining"] + 1e-9:
                        refused = (
                            f"the {scope} privacy budget is exhausted: {state['remaining']:.2f}"
                            f" of {state['limit']:.2f} left in the {self.policy.window_days}-"
                            f"day window and this question costs {cost:.2f}; it renews as "
                            "earlier questions age out of the window, or an administrator "
                            "can reset it")
                        break
                if refused is not None:
                    entry = ledger.record(identity, "refused", question_hash=digest,
                                          question=question.canonical(), data_version=version,
                                          message=refused)
                else:
                    entry = ledger.record(identity, "pending",
                                          question_hash=digest, question=question.canonical(),
                                          data_version=version, noise_key=self.noise_key,
                                          cells=cells, epsilon=cost)
                    for state in budget.values():
                        if state is not None:
                            state["spent"] = round(state["spent"] + cost, 6)
                            state["remaining"] = round(
                                max(state["limit"] - state["spent"], 0.0), 6)
                conn.commit()
            row = entry.fetchone()
        assert row is not None
        return _Decision(int(row["id"]), version, repeated, cost, budget, refused)

    def _settle_unanswered(self, decision: _Decision, outcome: str, message: str) -> None:
        """The engine refused the question (``invalid``) or did not answer (``failed``):
        nothing is released, so nothing is charged."""
        if decision.refused is not None:
            return  # recorded as refused, and nothing was charged
        try:
            self._settle(decision.entry, outcome, message=message)
        except Exception:  # the caller's error is the one to report
            log.exception("could not settle a cohort question the engine did not answer")

    def _settle(self, entry: int, outcome: str, *, released: int = 0,
                message: str | None = None) -> None:
        with self.db.statement() as conn:
            CohortLedger(conn).settle(entry, outcome, released=released, message=message)

    def _noise(self, version: int, question: Question, cells: list[Cell],
               scales: dict[str, float]
               ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The noise of the total and of each group cell. Keyed on the data version, the
        canonical criteria (not the grouping: a total is the same whatever the cells), the
        cell, the family and the scale."""
        noise = Noise(self.secret, f"{version}|{dumps(question.criteria)}|")
        return (noise.draws([b"total"], (scales["total_subjects"], scales["total_studies"])),
                noise.draws([cell.label().encode() for cell in cells[1:]],
                            (scales.get("cell_subjects", 1.0), scales.get("cell_studies", 1.0))))

    def refused(self, identity: Identity, message: str) -> None:
        """Audit a count request refused as invalid (a researcher's only: others are refused
        before they are heard)."""
        if identity.role != Role.RESEARCHER:
            return
        with self.db.transaction() as conn:
            CohortLedger(conn).record(identity, "invalid", message=message[:500])

    def scales(self, question: Question, ctx: Context) -> dict[str, float]:
        """Laplace scale per count family (see ``catalogue.privacy.disclosure``)."""
        families = 4 if question.group_by else 2
        per_family = self.policy.epsilon / families
        overlap = math.prod(1 if dim in SINGLE_VALUED else len(buckets(dim, ctx))
                            for dim in question.group_by)
        cap = self.policy.study_cap
        scales = {"total_subjects": 1 / per_family, "total_studies": cap / per_family}
        if question.group_by:
            scales.update(cell_subjects=overlap / per_family,
                          cell_studies=cap * overlap / per_family)
        return {k: round(v, 6) for k, v in scales.items()}

    # -- budgets ------------------------------------------------------------------------------
    def _budget(self, ledger: CohortLedger, identity: Identity, window: timedelta,
                spent: tuple[float, float] | None = None) -> dict[str, dict[str, Any] | None]:
        """The researcher's and organisation's budgets (``spent``: already read, else read)."""
        def state(limit: float, spent: float) -> dict[str, Any]:
            return {"limit": limit, "spent": round(spent, 6),
                    "remaining": round(max(limit - spent, 0.0), 6),
                    "window_days": self.policy.window_days}

        if spent is None:
            spent = (ledger.spent("user", str(identity.user_id), window),
                     ledger.spent("organisation", identity.organisation_id, window)
                     if identity.organisation_id else 0.0)
        out: dict[str, dict[str, Any] | None] = {
            "researcher": state(self.policy.budget, spent[0]),
            "organisation": None,
        }
        if identity.organisation_id:
            out["organisation"] = state(self.policy.organisation_budget, spent[1])
        return out

    def budget(self, identity: Identity) -> dict[str, Any]:
        """The caller's own remaining budget."""
        require_role(identity, Role.RESEARCHER)
        with self.db.transaction() as conn:
            return self._budget(CohortLedger(conn), identity,
                                timedelta(days=self.policy.window_days))

    def budgets(self, identity: Identity) -> list[dict[str, Any]]:
        """Admins: every researcher who asked in the window, with their budgets."""
        require_admin(identity)
        window = timedelta(days=self.policy.window_days)
        with self.db.transaction() as conn:
            ledger = CohortLedger(conn)
            out = []
            for user in ledger.spenders(window):
                who = Identity(user_id=user["user_id"], username=user["username"],
                               role=Role.RESEARCHER, organisation_id=user["organisation_id"])
                out.append({"username": user["username"],
                            "organisation_id": user["organisation_id"],
                            **self._budget(ledger, who, window)})
        return out

    def reset(self, identity: Identity, *, username: str | None = None,
              organisation_id: str | None = None, reason: str | None = None) -> None:
        """Admins: start a user's or an organisation's budget afresh (audited)."""
        require_admin(identity)
        if (username is None) == (organisation_id is None):
            raise ValidationError("give either username or organisation_id")
        with self.db.transaction() as conn:
            if username is not None:
                row = conn.execute("SELECT id FROM users WHERE username = %s",
                                   (username,)).fetchone()
                if row is None:
                    raise NotFound(f"no user {username!r}")
                scope, scope_id = "user", str(row["id"])
            else:
                row = conn.execute("SELECT id FROM organisations WHERE id = %s",
                                   (organisation_id,)).fetchone()
                if row is None:
                    raise NotFound(f"no organisation {organisation_id!r}")
                scope, scope_id = "organisation", str(organisation_id)
            CohortLedger(conn).reset(scope, scope_id, identity, reason)
            audit(conn, identity, "cohort.budget_reset", scope, username or organisation_id,
                  {"reason": reason} if reason else {})

    def queries(self, identity: Identity, limit: int = 100, before_id: int | None = None,
                username: str | None = None,
                organisation_id: str | None = None) -> list[dict[str, Any]]:
        """Admins: the audit log of count questions, newest first."""
        require_admin(identity)
        with self.db.transaction() as conn:
            return CohortLedger(conn).queries(limit, before_id, username, organisation_id)
