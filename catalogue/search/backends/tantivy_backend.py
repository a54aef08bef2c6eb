"""Embedded tantivy backend: index files in the data folder, no server to run.

Layout under ``<data_dir>/search``::

    indices/<physical>/        tantivy index + definition.json
    aliases/<logical>          text file naming the current physical index (atomic os.replace)

One process writes (the one running the indexer or a rebuild); every process reads, reopening its
searcher when the alias file changes or an index commits.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import tantivy

from catalogue.errors import NotFound, SearchUnavailable, ValidationError
from catalogue.search import nested
from catalogue.search.analysis import folding_analyzer, stem, stemming_analyzer, words
from catalogue.search.base import Action, BulkResult, SearchBackend, Upsert
from catalogue.search.mappings import FieldDef, IndexDefinition, load_definition
from catalogue.search.query import (
    AllOf,
    AnyOf,
    CountRequest,
    Exists,
    Nested,
    Not,
    Range,
    SearchRequest,
    SearchResult,
    Terms,
    after_range,
    group_cells,
    lower,
    sort_field,
)

TEXT_ANALYZER = "catalogue_text"
# Indexing threads of the one writer: analysing the multilingual text is the cost of a bulk
# build, and a second thread nearly doubles it on two cores (20,000 realistic dataset
# documents: 3,246/s with one thread and 64 MB, 5,742/s with two and 128 MB). The heap is
# shared by the threads (tantivy needs at least 15 MB each).
_WRITER_THREADS = max(1, min(2, os.cpu_count() or 1))
_WRITER_HEAP = 64_000_000 * _WRITER_THREADS
#: a grouped count asks its terms aggregation for up to a*cells+b values without listing them
#: (cheaper); when that many occur it asks again with the cells' values listed
TERMS_HEADROOM = (2, 1000)


def _analyzer_name(fdef: FieldDef) -> str:
    return f"catalogue_{fdef.language}" if fdef.language else TEXT_ANALYZER


def _encoding_fields(definition: IndexDefinition) -> set[str]:
    """Keyword fields that encode nested documents: searched, never read or aggregated."""
    out: set[str] = set()
    for nested_def in definition.nested.values():
        out.add(nested_def.encoded_as)
        if nested_def.items is not None:
            out.update((nested_def.items.own_field, nested_def.items.parent_field,
                        nested_def.items.kind_field))
    return out


def _schema(definition: IndexDefinition) -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    encoding = _encoding_fields(definition)
    for f in definition.fields.values():
        if f.nested:
            continue  # nested documents are encoded as tokens (see catalogue.search.nested)
        if f.name in encoding:  # indexed only: neither stored nor a fast field
            sb.add_text_field(f.name, stored=False, fast=False, tokenizer_name="raw")
        elif f.type == "keyword":
            sb.add_text_field(f.name, stored=True, fast=True, tokenizer_name="raw")
        elif f.type == "text":
            sb.add_text_field(f.name, stored=f.stored, tokenizer_name=_analyzer_name(f))
        elif f.type == "integer":
            sb.add_integer_field(f.name, stored=True, indexed=True, fast=True)
        elif f.type == "float":
            sb.add_float_field(f.name, stored=True, indexed=True, fast=True)
        elif f.type == "date":
            sb.add_date_field(f.name, stored=True, indexed=True, fast=True)
        elif f.type == "boolean":
            sb.add_boolean_field(f.name, stored=True, indexed=True, fast=True)
    return sb.build()


class _OpenIndex:
    """One physical index opened in this process."""

    def __init__(self, path: Path, definition: IndexDefinition) -> None:
        self.path = path
        self.definition = definition
        self.index = tantivy.Index.open(str(path))
        self.index.register_tokenizer(TEXT_ANALYZER, folding_analyzer())
        for language in sorted({f.language for f in definition.fields.values() if f.language}):
            self.index.register_tokenizer(f"catalogue_{language}", stemming_analyzer(language))
        self.schema = self.index.schema
        self.writer: Any = None
        self.lock = threading.Lock()

    def get_writer(self) -> Any:
        if self.writer is None:
            try:
                self.writer = self.index.writer(heap_size=_WRITER_HEAP,
                                                num_threads=_WRITER_THREADS)
            except ValueError as exc:
                raise SearchUnavailable(
                    f"the tantivy index {self.path.name} is locked by another process "
                    "(only one catalogue process may write to a data folder)"
                ) from exc
        return self.writer

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.wait_merging_threads()
            except Exception:  # noqa: S110 - best effort when shutting down
                pass
            self.writer = None


class TantivyBackend(SearchBackend):
    name = "tantivy"

    def __init__(self, root: Path, prefix: str = "catalogue-") -> None:
        self.root = Path(root)
        self.prefix = prefix
        self.indices_dir = self.root / "indices"
        self.aliases_dir = self.root / "aliases"
        self.indices_dir.mkdir(parents=True, exist_ok=True)
        self.aliases_dir.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, _OpenIndex] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, config: Any) -> TantivyBackend:
        return cls(Path(config.data_dir) / "search", config.search_index_prefix)

    # -- names --------------------------------------------------------------------------------
    def logical_name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _resolve(self, index: str) -> str:
        if (self.indices_dir / index).is_dir():
            return index
        # A rebuild in another process may switch the alias and drop the old index between our
        # reading the alias and using the folder: read the alias again before giving up.
        for attempt in range(5):
            current = self.current_index(index)
            if current is not None:
                return current
            if not (self.aliases_dir / index).exists():
                break
            time.sleep(0.01 * (attempt + 1))
        raise NotFound(f"search index {index!r} does not exist")

    def _opened(self, index: str) -> _OpenIndex:
        for attempt in range(3):
            physical = self._resolve(index)
            try:
                return self._open_physical(physical)
            except FileNotFoundError:
                if attempt == 2 or physical == index:  # a physical name: really gone
                    raise NotFound(f"search index {index!r} does not exist") from None
        raise AssertionError("unreachable")

    def _open_physical(self, physical: str) -> _OpenIndex:
        with self._lock:
            handle = self._open.get(physical)
            if handle is None:
                path = self.indices_dir / physical
                data = json.loads((path / "definition.json").read_text())
                try:  # the shipped definition of that version (facets, nested documents...)
                    definition = load_definition(data["name"], data["version"])
                except (FileNotFoundError, KeyError):
                    definition = IndexDefinition(
                        name=data["name"],
                        version=data["version"],
                        fields={k: FieldDef(**v) for k, v in data["fields"].items()},
                        text_fields=tuple(data["text_fields"]),
                        id_field=data["id_field"],
                    )
                try:
                    handle = _OpenIndex(path, definition)
                except ValueError as exc:  # tantivy: the folder vanished while opening
                    raise FileNotFoundError(str(exc)) from None
                # forget indices another process dropped (their files are gone)
                for name in [n for n in self._open if not (self.indices_dir / n).is_dir()]:
                    self._open.pop(name).close()
                self._open[physical] = handle
            return handle

    # -- contract -----------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        if not os.access(self.root, os.W_OK):
            raise SearchUnavailable(f"the tantivy index folder {self.root} is not writable")
        return {
            "engine": "tantivy",
            "version": _tantivy_version(),
            "path": str(self.root),
            "indices": sorted(p.name for p in self.indices_dir.iterdir()),
        }

    def create_index(self, definition: IndexDefinition) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        physical = f"{self.logical_name(definition.name)}-v{definition.version}-{stamp}"
        path = self.indices_dir / physical
        path.mkdir(parents=True)
        tantivy.Index(_schema(definition), path=str(path), reuse=False)
        meta = {
            "name": definition.name,
            "version": definition.version,
            "fields": {k: asdict(v) for k, v in definition.fields.items()},
            "text_fields": list(definition.text_fields),
            "id_field": definition.id_field,
        }
        (path / "definition.json").write_text(json.dumps(meta, indent=1))
        return physical

    def current_index(self, logical: str) -> str | None:
        try:
            name = (self.aliases_dir / logical).read_text().strip()
        except FileNotFoundError:
            return None
        return name if (self.indices_dir / name).is_dir() else None

    def switch_alias(self, logical: str, physical: str) -> None:
        if not (self.indices_dir / physical).is_dir():
            raise NotFound(f"search index {physical!r} does not exist")
        tmp = self.aliases_dir / f".{logical}.{os.getpid()}.tmp"
        tmp.write_text(physical)
        os.replace(tmp, self.aliases_dir / logical)

    def list_indices(self, logical: str) -> list[str]:
        return sorted(
            p.name for p in self.indices_dir.iterdir() if p.name.startswith(f"{logical}-v")
        )

    def drop_index(self, physical: str) -> None:
        for alias in self.aliases_dir.iterdir():
            if not alias.name.startswith(".") and alias.read_text().strip() == physical:
                raise ValidationError(f"{physical} is the current index of {alias.name}")
        with self._lock:
            handle = self._open.pop(physical, None)
            if handle is not None:
                handle.close()
        shutil.rmtree(self.indices_dir / physical, ignore_errors=True)

    def bulk(self, index: str, actions: Sequence[Action]) -> BulkResult:
        return self._write(index, [actions], fresh=False)

    def fill(self, index: str, batches: Iterable[Sequence[Action]]) -> BulkResult:
        """One writer, one commit at the end: the writer's threads analyse and index while the
        next batch is read and built (a commit per batch would wait for them every time)."""
        result = self._write(index, batches, fresh=True)
        self._opened(index).index.reload()
        return result

    def _write(self, index: str, batches: Iterable[Sequence[Action]],
               fresh: bool) -> BulkResult:
        """Apply every action with the one writer, then commit once; anything raised on the
        way rolls all of it back. An upsert first deletes its id (a parent and its item
        documents share the parent field: one term each); in a ``fresh`` index, only an id
        that came earlier in the same load. Deleting every id there doubled the time of a
        subjects load (each delete is looked up in every segment at the commit); remembering
        the ids costs about 60 bytes each."""
        handle = self._opened(index)
        result = BulkResult()
        items = _items(handle.definition)
        key = items[1].parent_field if items else handle.definition.id_field
        seen: set[str] = set()
        with handle.lock:
            writer = handle.get_writer()
            try:
                for actions in batches:
                    for action in actions:
                        if not fresh or action.id in seen:
                            writer.delete_documents_by_term(key, action.id)
                        if fresh:
                            seen.add(action.id)
                        if isinstance(action, Upsert):
                            for doc in self._documents(handle.definition, action.id,
                                                       action.document):
                                writer.add_document(
                                    tantivy.Document.from_dict(doc, handle.schema))
                        result.applied += 1
                writer.commit()
            except (ValueError, TypeError) as exc:
                writer.rollback()
                raise ValidationError(f"document rejected by the index: {exc}") from None
            except BaseException:
                writer.rollback()
                raise
        return result

    def refresh(self, index: str) -> None:
        self._opened(index).index.reload()

    def count(self, index: str, filters: Iterable[Any] = ()) -> int:
        handle = self._opened(index)
        query = self._all_of([*self._parents_only(handle),
                              self._filters_query(handle, tuple(filters))])
        return int(handle.index.searcher().search(query, 1, count=True).count)  # type: ignore[attr-defined]

    def count_cells(self, index: str, request: CountRequest) -> list[tuple[int, int]]:
        handle = self._opened(index)
        definition = handle.definition
        found = _items(definition, request.path)
        if found is None:
            raise ValidationError(f"the {definition.name} index has no countable {request.path}")
        _nested_def, items = found
        searcher = handle.index.searcher()
        schema = handle.schema
        base = [self._filters_query(handle, request.filters, request.any_of)]
        parents = tantivy.Query.term_query(schema, items.kind_field, "parent")
        children = tantivy.Query.term_query(schema, items.kind_field, "item")
        capped = tantivy.Query.range_query(schema, items.rank_field, tantivy.FieldType.Integer,
                                           1, int(request.item_cap))
        out: list[tuple[int, int]] = [(0, 0)] * request.size()
        # per distinct cell base, two passes: the parents that match, and the items within the
        # cap that match the cell's item conjunctions (each an intersection led by its most
        # selective clause; one query matching both would union every parent's posting); cells
        # that differ by one field's value are answered by a terms aggregation in each pass
        passes: dict[Any, list[Any]] = {}
        for group in group_cells(request.cells, definition):
            passes.setdefault(group.base, []).append(group)
        for cell, groups in passes.items():
            clauses = [self._filter(handle, f) for f in cell.filters]
            if cell.any_of:
                clauses.append(tantivy.Query.boolean_query(
                    [(tantivy.Occur.Should, self._filter(handle, f)) for f in cell.any_of]))
            own: list[Any] = []
            if cell.items and all(cell.items):
                tokens: set[str] = set()
                for conj in cell.items:
                    tokens.update(nested.encode(definition, request.path,
                                                tuple(lower(f, definition) for f in conj)))
                own.append(tantivy.Query.term_set_query(schema, items.own_field, sorted(tokens)))
            (parents_n, parent_buckets), (items_n, item_buckets) = (
                self._count_pass(searcher, self._all_of([*base, *clauses, parents]), groups),
                self._count_pass(searcher,
                                 self._all_of([*base, *clauses, children, capped, *own]),
                                 groups))
            for number, group in enumerate(groups):
                if group.field is None:
                    out[group.values[""]] = (parents_n, items_n)
                    continue
                name = f"g{number}"
                for value, position in group.values.items():
                    out[position] = (parent_buckets[name].get(value, 0),
                                     item_buckets[name].get(value, 0))
        return out

    @staticmethod
    def _count_pass(searcher: Any, query: Any,
                    groups: list[Any]) -> tuple[int, dict[str, dict[str, int]]]:
        """The documents ``query`` matches: their number (when a group is the lone cell
        without a grouped field, e.g. the total) and, per grouped cell group ``g<n>``, the
        count per value of its field (every value present, not only the cells': an `include`
        list of a thousand datasets cost about 1 ms a pass; exact while fewer values than the
        headroom occur, else asked again with the cells' values listed)."""
        aggs: dict[str, Any] = {}
        for number, group in enumerate(groups):
            if group.field is not None:
                size = TERMS_HEADROOM[0] * len(group.values) + TERMS_HEADROOM[1]
                aggs[f"g{number}"] = {"terms": {"field": group.field, "size": size,
                                                "segment_size": size}}
        if not aggs:
            return int(searcher.search(query, 1, count=True).count), {}
        if any(group.field is None for group in groups):
            aggs["all"] = {"value_count": {"field": "dataset_id"}}  # on every document
        raw = searcher.aggregate(query, aggs)
        truncated = [number for number, group in enumerate(groups) if group.field is not None
                     and len(raw[f"g{number}"]["buckets"]) >= aggs[f"g{number}"]["terms"]["size"]]
        if truncated:
            for number in truncated:
                values = sorted(groups[number].values)
                aggs[f"g{number}"] = {"terms": {"field": groups[number].field,
                                                "include": values, "size": len(values),
                                                "segment_size": len(values)}}
            raw = searcher.aggregate(query, aggs)
        return (int(raw["all"]["value"]) if "all" in raw else 0,
                {name: {str(b["key"]): int(b["doc_count"]) for b in raw[name]["buckets"]}
                 for name in aggs if name != "all"})

    @staticmethod
    def _parents_only(handle: _OpenIndex) -> list[Any]:
        """Queries of an index with item documents count parents only."""
        found = _items(handle.definition)
        if found is None:
            return []
        return [tantivy.Query.term_query(handle.schema, found[1].kind_field, "parent")]

    def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        handle = self._opened(index)
        searcher = handle.index.searcher()
        query = tantivy.Query.term_query(handle.schema, handle.definition.id_field, doc_id)
        hits = searcher.search(query, 1).hits
        if not hits:
            return None
        return self._stored(handle.definition, searcher.doc(hits[0][1]).to_dict())

    def search(self, index: str, request: SearchRequest) -> SearchResult:
        handle = self._opened(index)
        definition = handle.definition
        searcher = handle.index.searcher()
        base: list[Any] = []
        if request.text:
            base.extend(self._text_clauses(handle, request.text))
        filters = list(request.filters)
        kwargs: dict[str, Any] = {}
        after: Any = None  # continues a sorted listing: restricts the hits, not total/facets
        if request.sort:
            key, descending = sort_field(definition, request.sort)
            if request.search_after is not None:
                after = self._filters_query(
                    handle, (after_range(key, descending, request.search_after),))
            kwargs = {"order_by_field": key,
                      "order": tantivy.Order.Desc if descending else tantivy.Order.Asc}
        if filters or request.any_of:
            base.append(self._filters_query(handle, tuple(filters), request.any_of))
        base.extend(self._parents_only(handle))
        selected = [(name, self._filter(handle, f)) for name, f in request.facet_filters]
        query = self._all_of(base + [q for _, q in selected])
        offset = 0 if after is not None else request.offset
        hits_query = query if after is None else self._all_of([query, after])
        found = searcher.search(hits_query, max(request.size, 1), count=True, offset=offset,
                                **kwargs)
        id_field = definition.id_field
        hits = found.hits[: request.size]
        ids = [str(searcher.doc(addr).get_first(id_field)) for _score, addr in hits]
        cursors = [int(value) for value, _addr in hits] if request.sort else []
        facets: dict[str, list[tuple[str, int]]] = {}
        requests = request.facet_requests()
        # facets whose own selection is ignored share one aggregation per distinct query
        groups: dict[str | None, list[Any]] = {}
        selected_names = {name for name, _ in selected}
        for facet in requests:
            if definition.fields.get(facet.field) is None:
                raise ValidationError(f"unknown search field {facet.field!r}")
            groups.setdefault(facet.name if facet.name in selected_names else None,
                              []).append(facet)
        for excluded, members in groups.items():
            facet_query = query if excluded is None else self._all_of(
                base + [q for name, q in selected if name != excluded])
            aggs = {f.name: {"terms": {"field": f.field, "size": f.size,
                                       "segment_size": max(f.size * 5, 1000)}}
                    for f in members}
            raw = searcher.aggregate(facet_query, aggs)
            for f in members:
                facets[f.name] = [(str(b["key"]), int(b["doc_count"]))
                                  for b in raw[f.name]["buckets"]]
        counted = found if after is None else searcher.search(query, 1, count=True)
        total = int(counted.count)  # type: ignore[attr-defined]
        return SearchResult(total=total, ids=ids, facets=facets, cursors=cursors)

    @staticmethod
    def _all_of(clauses: list[Any]) -> Any:
        if not clauses:
            return tantivy.Query.all_query()
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in clauses])

    def close(self) -> None:
        with self._lock:
            for handle in self._open.values():
                handle.close()
            self._open.clear()

    # -- helpers ------------------------------------------------------------------------------
    def _text_clauses(self, handle: _OpenIndex, text: str) -> list[Any]:
        """One clause per word: it must match some text field, folded or (for language
        fields) stemmed by that language's analyser."""
        clauses = []
        text_fields = [handle.definition.fields[f] for f in handle.definition.text_fields]
        for word in words(text):
            per_field = []
            for fdef in text_fields:
                term = stem(fdef.language, word) if fdef.language else word
                if term:
                    per_field.append((tantivy.Occur.Should,
                                      tantivy.Query.term_query(handle.schema, fdef.name, term)))
            clauses.append(tantivy.Query.boolean_query(per_field))
        return clauses

    def _filter(self, handle: _OpenIndex, flt: Any) -> Any:
        flt = lower(flt, handle.definition)
        if isinstance(flt, Nested):
            nested_def = handle.definition.nested.get(flt.path)
            tokens = nested.encode(handle.definition, flt.path, flt.filters)
            assert nested_def is not None
            return tantivy.Query.term_set_query(handle.schema, nested_def.encoded_as, tokens)
        if isinstance(flt, AllOf):
            return self._all_of([self._filter(handle, f) for f in flt.filters])
        if isinstance(flt, AnyOf):
            if not flt.filters:
                return tantivy.Query.empty_query()
            return tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, self._filter(handle, f)) for f in flt.filters])
        if isinstance(flt, Not):
            return tantivy.Query.boolean_query([
                (tantivy.Occur.Must, tantivy.Query.all_query()),
                (tantivy.Occur.MustNot, self._filter(handle, flt.filter))])
        fdef = handle.definition.fields.get(flt.field)
        if fdef is None:
            raise ValidationError(f"unknown search field {flt.field!r}")
        if isinstance(flt, Exists):
            if fdef.nested or fdef.type == "text":
                raise ValidationError(f"cannot test whether text field {flt.field!r} exists")
            return tantivy.Query.exists_query(flt.field)
        if isinstance(flt, Terms) and fdef.type == "keyword" and len(flt.values) > 1:
            # one term-set query, not a disjunction of term queries (many values: datasets)
            return tantivy.Query.term_set_query(handle.schema, flt.field,
                                                [str(v) for v in flt.values])
        if isinstance(flt, Terms):
            return (
                tantivy.Query.boolean_query(
                    [
                        (
                            tantivy.Occur.Should,
                            tantivy.Query.term_query(handle.schema, flt.field, self._term(fdef, v)),
                        )
                        for v in flt.values
                    ]
                )
                if flt.values
                else tantivy.Query.empty_query()
            )
        if isinstance(flt, Range):
            kind = {
                "integer": tantivy.FieldType.Integer,
                "float": tantivy.FieldType.Float,
                "date": tantivy.FieldType.Date,
            }.get(fdef.type)
            if kind is None:
                raise ValidationError(f"field {flt.field!r} is not numeric")
            low = None if flt.gte is None else self._bound(fdef, flt.gte)
            high = None if flt.lte is None else self._bound(fdef, flt.lte)
            return tantivy.Query.range_query(handle.schema, flt.field, kind, low, high)
        raise ValidationError(f"unsupported filter {type(flt).__name__}")

    def _filters_query(
        self, handle: _OpenIndex, filters: tuple[Any, ...], any_of: tuple[tuple[Any, ...], ...] = ()
    ) -> Any:
        clauses = [(tantivy.Occur.Must, self._filter(handle, f)) for f in filters]
        for group in any_of:
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.boolean_query(
                        [(tantivy.Occur.Should, self._filter(handle, f)) for f in group]
                    ),
                )
            )
        if not clauses:
            return tantivy.Query.all_query()
        return tantivy.Query.boolean_query(clauses)

    @staticmethod
    def _term(fdef: FieldDef, value: Any) -> Any:
        if fdef.type == "integer":
            return int(value)
        if fdef.type == "float":
            return float(value)
        if fdef.type == "boolean":
            return bool(value)
        return str(value)

    @staticmethod
    def _bound(fdef: FieldDef, value: Any) -> Any:
        if fdef.type == "integer":
            return int(value)
        if fdef.type == "date":
            return datetime.fromtimestamp(float(value), UTC)
        return float(value)

    @classmethod
    def _documents(cls, definition: IndexDefinition, doc_id: str,
                   doc: dict[str, Any]) -> list[dict[str, Any]]:
        """The engine documents of one logical document: itself, and one item document per
        nested item when the definition asks for them (see ``ItemDocuments``)."""
        found = _items(definition)
        if found is None:
            return [cls._document(definition, doc)]
        nested_def, items = found
        own = [nested.study_tokens(nested_def, item) for item in doc.get(nested_def.path) or []]
        base = cls._document(definition, doc, {nested_def.path: own})
        base[items.kind_field] = "parent"
        base[items.parent_field] = doc_id
        out = [base]
        inherited = {k: v for k, v in base.items()
                     if k not in (definition.id_field, items.kind_field)}
        rank_name = items.rank.split(".", 1)[1]
        for position, item in enumerate(doc.get(nested_def.path) or [], start=1):
            rank = int(item.get(rank_name) or position)
            out.append({**inherited, definition.id_field: f"{doc_id}/{rank}",
                        items.kind_field: "item", items.own_field: own[position - 1],
                        items.rank_field: rank})
        return out

    @staticmethod
    def _document(definition: IndexDefinition, doc: dict[str, Any],
                  tokens_of: dict[str, list[list[str]]] | None = None) -> dict[str, Any]:
        """``tokens_of``: the nested items' tokens when the caller has them already."""
        out: dict[str, Any] = {}
        for key, value in doc.items():
            nested_def = definition.nested.get(key)
            if nested_def is not None:
                per_item = (tokens_of or {}).get(key)
                if per_item is None:
                    per_item = [nested.study_tokens(nested_def, item) for item in value]
                tokens = [t for item_tokens in per_item for t in item_tokens]
                out[nested_def.encoded_as] = list(dict.fromkeys(tokens))
                continue
            fdef = definition.fields.get(key)
            if fdef is None:
                raise ValueError(f"field {key!r} is not in the {definition.name} index")
            if value is None or value == []:
                continue
            if fdef.type == "date":
                value = _as_datetime(value)
            out[key] = value
        return out

    @staticmethod
    def _stored(definition: IndexDefinition, stored: dict[str, list[Any]]) -> dict[str, Any]:
        """Stored fields as ``{field: [values]}`` (dates as ISO strings)."""
        out: dict[str, Any] = {}
        for key, values in stored.items():
            fdef = definition.fields.get(key)
            if fdef is None:
                continue
            if fdef.type == "date":
                values = [v.isoformat() for v in values]
            out[key] = list(values)
        return out


def _items(definition: IndexDefinition, path: str | None = None) -> Any:
    """``(nested definition, item documents)`` of the index (of ``path``), or ``None``."""
    for nested_def in definition.nested.values():
        if nested_def.items is not None and path in (None, nested_def.path):
            return nested_def, nested_def.items
    return None


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _tantivy_version() -> str:
    from importlib.metadata import version

    return version("tantivy")
