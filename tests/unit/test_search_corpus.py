"""The generated search corpus is deterministic and realistic."""

from __future__ import annotations

from collections import Counter

from catalogue.model.dataset import DatasetStatus
from catalogue.ontology import get_vocabulary, normalise
from catalogue.testing.search_corpus import generate_datasets, providers


def test_deterministic_per_seed() -> None:
    first = [d.identifier + repr(d.conditions) for d in generate_datasets(200, seed=1)]
    assert first == [d.identifier + repr(d.conditions) for d in generate_datasets(200, seed=1)]
    assert first != [d.identifier + repr(d.conditions) for d in generate_datasets(200, seed=2)]


def test_distributions_look_like_practice() -> None:
    data = list(generate_datasets(5000, seed=0))
    assert len({d.identifier for d in data}) == 5000
    published = sum(d.status == DatasetStatus.PUBLISHED for d in data) / len(data)
    assert 0.80 <= published <= 0.95
    assert {d.organisation_id for d in data} == {p.id for p in providers()}
    assert len({p.country for p in providers()}) == 15
    conditions = get_vocabulary("conditions")
    organ: Counter[str] = Counter()
    for d in data:
        ids, _ = normalise("conditions", d.conditions[:1])
        if ids:
            path = [ids[0], *conditions.ancestors(ids[0])]
            organ[path[-2] if len(path) > 1 else path[0]] += 1
    top4 = {k for k, _ in organ.most_common(4)}
    assert top4 == {"snomed:93880001", "snomed:254837009", "snomed:399068003",
                    "snomed:363406005"}
    prostate = [d for d in data if d.conditions == ["snomed:399068003"]]
    assert prostate and all({"MR", "PT"} & set(d.modalities) and
                            {"PELVIS", "PROSTATE"} & set(d.body_parts) for d in prostate)
    breast = [d for d in data if len(d.conditions) == 1 and
              normalise("conditions", d.conditions)[0] in (["snomed:254837009"],
                                                           ["snomed:408643008"])]
    assert breast and all(d.sexes == ["female"] for d in breast)
    german = [d for d in data if d.countries == ["DE"]]
    assert german and all("de" in d.title for d in german)
    assert any(c.startswith("local:") for d in data for c in d.conditions)
