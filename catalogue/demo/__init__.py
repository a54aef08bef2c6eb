"""The bundled demo catalogue, loaded idempotently by ``catalogue demo``."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from typing import Any

from catalogue.errors import Conflict
from catalogue.model.dataset import Dataset, DatasetStatus, Distribution
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime


def demo_data() -> dict[str, Any]:
    text = resources.files("catalogue.demo").joinpath("catalogue.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def load_demo(runtime: Runtime) -> dict[str, int]:
    """Create the demo organisations, users and datasets if missing; return counts created."""
    data = demo_data()
    created = {"organisations": 0, "users": 0, "datasets": 0}
    existing_orgs = {o.id for o in runtime.identities.list_organisations()}
    for org in data["organisations"]:
        if org["id"] not in existing_orgs:
            runtime.identities.create_organisation(SYSTEM, Organisation(**org))
            created["organisations"] += 1
    for user in data["users"]:
        try:
            runtime.identities.create_user(
                SYSTEM,
                User(
                    id="",
                    username=user["username"],
                    role=Role(user["role"]),
                    organisation_id=user.get("organisation_id"),
                ),
            )
            created["users"] += 1
        except Conflict:
            pass
    for raw in data["datasets"]:
        item = dict(raw)
        dists = [Distribution(**d) for d in item.pop("distributions", [])]
        for key in ("temporal_start", "temporal_end"):
            if item.get(key):
                item[key] = date.fromisoformat(item[key])
        item["status"] = DatasetStatus(item.get("status", "draft"))
        _, was_created = runtime.datasets.save(SYSTEM, Dataset(distributions=dists, **item))
        created["datasets"] += int(was_created)
    # EUCAIM-DCAT-AP descriptions go through the real harvester (a local file source)
    eucaim = resources.files("catalogue.demo").joinpath("eucaim-catalogue.ttl")
    with resources.as_file(eucaim) as path:
        report = runtime.harvest.run_url(SYSTEM, "dcat", str(path), "forth-ics")
    created["datasets"] += report.counts.get("created", 0)
    return created
