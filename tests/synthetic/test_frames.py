"""A synthetic Bundle or NDJSON as DataFrames: one per resource type, flat columns, rows joined
on the Bundle's references; the report left out unless asked for and readable on its own."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from connector.synthetic.client import report_of
from connector.synthetic.fhir import BUNDLE_TAIL, bundle_entry, bundle_head, report_document
from connector.synthetic.frames import bundle_frames, ndjson_frames
from tests.synthetic.conftest import Fitted


def _bundle(generated: Fitted, patients: int) -> dict[str, Any]:
    resources = [r for batch in generated.generator.sample(generated.record, patients, seed=5)
                 for r in batch]  # fmt: skip
    report = json.dumps(generated.generator.report(generated.record)).encode()
    document = report_document(report, b"<html></html>", document_id=str(uuid.uuid4()), date="x")
    body = bundle_head(bundle_type="collection", bundle_id="b", timestamp="2026-12-07T00:00:00Z")
    body += b",".join(bundle_entry(r, bundle_type="collection") for r in [*resources, document])
    parsed: dict[str, Any] = json.loads(body + BUNDLE_TAIL)
    return parsed


def test_one_flat_frame_per_resource_type(generated: Fitted) -> None:
    bundle = _bundle(generated, 8)
    frames = bundle_frames(bundle)
    assert "DocumentReference" not in frames
    assert {"Patient", "Encounter", "Condition"} <= set(frames)
    patients = frames["Patient"]
    assert len(patients) == 8 and list(patients.columns)[0] == "id"
    assert {"gender", "birthDate", "meta.tag.0.code"} <= set(patients.columns)
    assert set(patients["meta.tag.0.code"]) == {"SYNTH"}
    for frame in frames.values():
        for column in frame.columns:
            assert all(not isinstance(v, dict | list) for v in frame[column]), column
    # Rows join on the Bundle's references.
    ids = {f"Patient/{i}" for i in patients["id"]}
    assert set(frames["Encounter"]["subject.reference"]) <= ids
    assert set(frames["Condition"]["subject.reference"]) <= ids
    total = sum(len(f) for f in frames.values())
    assert total == len(bundle["entry"]) - 1

    with_report = bundle_frames(bundle, include_report=True)
    assert len(with_report["DocumentReference"]) == 1
    report = report_of(bundle["entry"][-1]["resource"])
    assert report == generated.generator.report(generated.record)


def test_ndjson_gives_the_same_frames(generated: Fitted) -> None:
    bundle = _bundle(generated, 4)
    lines = [json.dumps(e["resource"]) for e in bundle["entry"]] + [""]
    from_ndjson = ndjson_frames(lines)
    from_bundle = bundle_frames(bundle)
    assert list(from_ndjson) == list(from_bundle)
    for kind, frame in from_bundle.items():
        assert from_ndjson[kind].equals(frame), kind


def test_not_a_bundle_is_refused() -> None:
    with pytest.raises(ValueError, match="not a FHIR Bundle"):
        bundle_frames({"resourceType": "Patient"})
    with pytest.raises(ValueError, match="resourceType"):
        ndjson_frames(['{"id": "x"}'])
