"""Index definitions read from ``mappings/<name>/v<N>.json`` (data, versioned).

A definition lists engine-neutral fields (``keyword``, ``text``, ``integer``, ``float``, ``date``,
``boolean``); each backend translates it into its own schema. The highest version is current; a
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


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    stored: bool = False


@dataclass(frozen=True)
class IndexDefinition:
    name: str
    version: int
    fields: dict[str, FieldDef]
    text_fields: tuple[str, ...]
    id_field: str = "id"
    engine: dict[str, Any] = field(default_factory=dict)

    def field(self, name: str) -> FieldDef:
        return self.fields[name]


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
        fields[fname] = FieldDef(fname, spec["type"], bool(spec.get("stored", False)))
    return IndexDefinition(
        name=data["name"],
        version=int(data["version"]),
        fields=fields,
        text_fields=tuple(data.get("text_fields", [])),
        id_field=data.get("id_field", "id"),
        engine=data.get("opensearch", {}),
    )
