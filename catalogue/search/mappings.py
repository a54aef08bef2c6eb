"""Index definitions read from ``mappings/<name>/v<N>.json`` (data, versioned).

A definition lists engine-neutral fields (``keyword``, ``text`` — optionally stemmed for one
language —, ``integer``, ``float``, ``date``, ``boolean``) and the facets shown to users; each
backend translates it into its own schema. The highest version is current; a
new version means a new physical index, filled by ``catalogue index rebuild``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from catalogue.resources import resource_dir

FIELD_TYPES = {"keyword", "text", "integer", "float", "date", "boolean"}


#: languages with a stemming analyser in every supported engine (Snowball stemmers: Lucene's
#: ``snowball`` filter and tantivy's ``stemmer`` filter implement the same algorithms)
LANGUAGES = {"english", "german", "french", "spanish", "italian", "dutch", "portuguese",
             "swedish", "danish", "finnish", "hungarian", "romanian"}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    stored: bool = False
    language: str | None = None     # text: stemmed with this language's analyser
    vocabulary: str | None = None   # keyword: values normalised to this vocabulary
    path_field: str | None = None   # keyword: the field holding values plus their ancestors
    sort_key: str | None = None     # integer/date: the unique key field used to sort on it
    nested: str | None = None       # a field of the nested documents named here
    bin: int | None = None          # integer: values are bins of this width (ranges snap to it)
    domain: tuple[int, int] | None = None  # binned: the lowest and highest bin


@dataclass(frozen=True)
class NestedDef:
    """Nested documents (``path``): native on Elasticsearch/OpenSearch; encoded as combination
    tokens in the keyword field ``encoded_as`` for engines without nested documents."""

    path: str
    encoded_as: str
    dimensions: tuple[str, ...]
    items: ItemDocuments | None = None


@dataclass(frozen=True)
class ItemDocuments:
    """For engines without nested documents: one extra document per nested item, so that items
    (a subject's studies) can be counted, not only their parents.

    An item document carries its parent's fields (so the parent's filters apply to it), its
    own combination tokens in ``own_field`` and its position in ``rank_field`` (copied from the
    nested field ``rank``); ``kind_field`` tells parents (``parent``) from items (``item``),
    ``parent_field`` holds the parent id on both, so that one term deletes a parent and its
    items together.
    """

    kind_field: str
    parent_field: str
    own_field: str
    rank_field: str
    rank: str

    def fields(self) -> tuple[str, ...]:
        """The engine-encoding fields (not sent to engines with native nested documents)."""
        return (self.kind_field, self.parent_field, self.own_field, self.rank_field)


@dataclass(frozen=True)
class FacetDef:
    """A facet declared as data: which field it counts, how it is labelled and shown."""

    name: str
    field: str
    label: str
    vocabulary: str | None = None
    hierarchical: bool = False


@dataclass(frozen=True)
class IndexDefinition:
    name: str
    version: int
    fields: dict[str, FieldDef]
    text_fields: tuple[str, ...]
    id_field: str = "id"
    engine: dict[str, Any] = field(default_factory=dict)
    facets: tuple[FacetDef, ...] = ()
    nested: dict[str, NestedDef] = field(default_factory=dict)

    def field(self, name: str) -> FieldDef:
        return self.fields[name]

    def language_fields(self) -> dict[str, FieldDef]:
        """Stemmed text fields by language tag (fields are named ``<name>_<tag>``)."""
        return {f.name.rsplit("_", 1)[-1]: f for f in self.fields.values() if f.language}

    def facet(self, name: str) -> FacetDef | None:
        return next((f for f in self.facets if f.name == name), None)


_FILE = re.compile(r"^v(\d+)\.json$")


@cache
def load_definition(name: str, version: int | None = None) -> IndexDefinition:
    """Load ``mappings/<name>/v<version>.json`` (the newest version by default)."""
    folder = resource_dir("mappings") / name
    versions = {int(m.group(1)): p for p in folder.iterdir() if (m := _FILE.match(p.name))}
    if not versions:
        raise FileNotFoundError(f"no index definitions in {folder}")
    chosen = max(versions) if version is None else version
    data = json.loads(versions[chosen].read_text())
    fields: dict[str, FieldDef] = {}
    for fname, spec in data["fields"].items():
        if spec["type"] not in FIELD_TYPES:
            raise ValueError(f"{versions[chosen]}: field {fname} has unknown type {spec['type']}")
        language = spec.get("language")
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"{versions[chosen]}: field {fname} has unknown language {language}")
        fields[fname] = FieldDef(
            fname, spec["type"], bool(spec.get("stored", False)), language,
            spec.get("vocabulary"), spec.get("path_field"), spec.get("sort_key"),
            spec.get("nested"), spec.get("bin"),
            tuple(spec["domain"]) if spec.get("domain") else None)
    for fdef in fields.values():
        for linked in (fdef.path_field, fdef.sort_key):
            if linked is not None and linked not in fields:
                raise ValueError(f"{versions[chosen]}: field {fdef.name} refers to {linked}")
    facets = tuple(FacetDef(f["name"], f["field"], f["label"], f.get("vocabulary"),
                            bool(f.get("hierarchical", False))) for f in data.get("facets", []))
    for facet in facets:
        if facet.field not in fields:
            raise ValueError(f"{versions[chosen]}: facet {facet.name} counts unknown {facet.field}")
    nested = {
        path: NestedDef(path, spec["encoded_as"], tuple(spec["dimensions"]),
                        ItemDocuments(**spec["item_documents"]) if spec.get("item_documents")
                        else None)
        for path, spec in data.get("nested", {}).items()
    }
    for nested_def in nested.values():
        items = nested_def.items
        for name in (nested_def.encoded_as, *nested_def.dimensions,
                     *((*items.fields(), items.rank) if items else ())):
            if name not in fields:
                raise ValueError(f"{versions[chosen]}: nested {nested_def.path} refers to {name}")
    return IndexDefinition(
        name=data["name"],
        version=int(data["version"]),
        fields=fields,
        text_fields=tuple(data.get("text_fields", [])),
        id_field=data.get("id_field", "id"),
        engine=data.get("opensearch", {}),
        facets=facets,
        nested=nested,
    )
