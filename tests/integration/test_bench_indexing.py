"""`catalogue bench indexing` on tiny sizes: both indices rebuilt in full through the rebuild's
path, and the engine alone loading the same documents; no timing thresholds."""

from __future__ import annotations

from catalogue.bench import all as every
from catalogue.bench import indexing
from catalogue.runtime import Runtime
from catalogue.search.query import SearchRequest, Terms


def test_small_run_rebuilds_both_indices_in_full(runtime: Runtime) -> None:
    figures = indexing.run(runtime, datasets=150, subjects=400, studies=1_000, batch=64)
    assert figures["engine"] == "tantivy" and figures["batch"] == 64
    # the subjects' own dataset (one per thousand subjects, at least one) is indexed too
    for index, documents in (("datasets", 151), ("subjects", 400)):
        found = figures[index]
        assert found["documents"] == found["rebuilt_documents"] == documents, index
        assert found["engine_alone_errors"] == 0
        for key in ("engine_alone_docs_per_s", "rebuild_docs_per_s",
                    "ratio_rebuild_vs_engine_alone", "engine_json_only_docs_per_s",
                    "ratio_rebuild_vs_engine_json_only"):
            assert found[key] > 0, (index, key)
        assert found["target_docs_per_s"] == 50_000
        assert found["meets_target"] == (found["rebuild_docs_per_s"] >= 50_000)
    assert runtime.search is not None
    # the baselines' physical indices are gone: only the rebuilt ones behind their aliases
    for index in ("datasets", "subjects"):
        logical = runtime.search.logical_name(index)
        assert runtime.search.list_indices(logical) == [runtime.search.current_index(logical)]
    subjects = runtime.search.logical_name("subjects")
    assert runtime.search.count(subjects) == 400
    published = runtime.search.count(runtime.search.logical_name("datasets"),
                                     [Terms("status", ("published",))])
    with runtime.database.transaction() as conn:
        row = conn.execute("SELECT count(*) AS n FROM datasets WHERE status = 'published'"
                           ).fetchone()
    assert row is not None and published == row["n"] > 0
    assert runtime.search.search(runtime.search.logical_name("datasets"),
                                 SearchRequest(text="lung")).total > 0
    # `catalogue bench` summarises both indices against both baselines
    rows = every.headline("indexing", {"status": "ok", "figures": figures})
    assert [(row.value, row.baseline) for row in rows] == [
        (figures[index]["rebuild_docs_per_s"], figures[index][baseline])
        for index in ("datasets", "subjects")
        for baseline in ("engine_alone_docs_per_s", "engine_json_only_docs_per_s")]
