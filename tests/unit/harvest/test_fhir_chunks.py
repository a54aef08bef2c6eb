"""NDJSON lines are cut into chunks bounded by count and by bytes, in order, losing none."""

from __future__ import annotations

from catalogue.harvest.fhir import FhirHarvester


def test_chunks_end_at_either_limit_and_keep_every_line_with_its_number() -> None:
    lines = [b"x" * (100 if i % 50 else 9000) for i in range(1, 501)]
    lines[10] = b"   "  # blank lines are skipped, not counted
    harvester = FhirHarvester(workers=1, chunk_size=40, chunk_bytes=8000)
    chunks = list(harvester._lines("Patient.ndjson", lines))
    items = [item for chunk in chunks for item in chunk]
    assert [item.location for item in items] == [
        f"Patient.ndjson:{n}" for n in range(1, 501) if n != 11]
    assert [item.resource for item in items] == [line for line in lines if line.strip()]
    for chunk in chunks[:-1]:
        size = sum(len(item.resource) for item in chunk)
        assert len(chunk) == 40 or size >= 8000
        # a chunk ends on the line that reached a limit, not later
        assert len(chunk) <= 40 and size - len(chunk[-1].resource) < 8000
    assert any(len(chunk) < 40 for chunk in chunks[:-1])  # the byte limit cut some
    assert any(len(chunk) == 40 for chunk in chunks)  # and the count limit others
