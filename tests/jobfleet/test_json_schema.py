"""`jobfleet jobs --json-schema`: the catalog as JSON Schema, and the TypeScript producer's copy of it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobfleet import wire
from jobfleet.catalog import JOBS
from jobfleet.json_schema import JobDocument, TraceContext, catalog_schema, render

COMMITTED = Path(__file__).parents[2] / "producers" / "typescript" / "schema" / "jobfleet.schema.json"


def test_the_typescript_producer_commits_the_schema_of_todays_catalog():
    # src/catalog.generated.ts is generated from this file; the node tests check that step
    assert COMMITTED.read_text() == render(), (
        "producers/typescript/schema/jobfleet.schema.json is stale: run `npm run generate` in "
        "producers/typescript and commit both files"
    )


def test_the_cli_prints_it(env):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "jobs", "--json-schema"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == render()


def test_every_job_with_its_queue_and_payload_model():
    schema = catalog_schema()
    jobs = schema["x-jobfleet"]["jobs"]
    assert list(jobs) == [spec.name for spec in JOBS]
    for spec in JOBS:
        entry = jobs[spec.name]
        assert entry["queue"] == spec.queue
        model = schema["$defs"][entry["payload"].removeprefix("#/$defs/")]
        assert model == spec.payload.model_json_schema()
    documents = [branch["properties"] for branch in schema["oneOf"]]
    assert [d["f"]["const"] for d in documents] == [spec.name for spec in JOBS]


def test_the_document_model_describes_what_the_producer_writes():
    document = wire.job_document(
        "messages.deliver", {"message_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}, 1
    )
    assert JobDocument.model_validate_json(document).k == json.loads(document)["k"]
    with pytest.raises(ValidationError):
        JobDocument.model_validate({"t": None, "f": "x", "a": [1], "k": {}, "et": 1})


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    ],
)
def test_a_w3c_traceparent_fits(traceparent):
    assert TraceContext(traceparent=traceparent).traceparent == traceparent


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    ],
)
def test_a_broken_traceparent_does_not(traceparent):
    with pytest.raises(ValidationError):
        TraceContext(traceparent=traceparent)
    # the schema says what the workers read
    assert wire.trace_context({"traceparent": traceparent}) is None
