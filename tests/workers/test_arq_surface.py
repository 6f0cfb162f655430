"""FleetWorker copies, replaces or wraps a few of arq's Worker methods: they were read in arq 0.28.0,
and a different arq must be read again before it runs the fleet."""

import hashlib
import inspect

import pytest
from arq.worker import Worker

from workers.worker import ARQ_SURFACE, FleetWorker


def source_sha256(name: str) -> str:
    return hashlib.sha256(inspect.getsource(getattr(Worker, name)).encode()).hexdigest()


@pytest.mark.parametrize("name", ARQ_SURFACE)
def test_arqs_methods_are_the_ones_the_copies_were_made_from(name):
    assert hasattr(Worker, name), f"arq's Worker has no {name} any more: FleetWorker relies on it"
    assert source_sha256(name) == ARQ_SURFACE[name], (
        f"arq's Worker.{name} differs from the one FleetWorker's copy or override was made from "
        "(arq 0.28.0): read it, carry the change over to workers/worker.py, then update ARQ_SURFACE"
    )


def test_every_method_fleetworker_overrides_is_watched():
    overridden = {
        name
        for name, value in vars(FleetWorker).items()
        if callable(value) and not name.startswith("__") and hasattr(Worker, name)
    }
    assert overridden <= set(ARQ_SURFACE), f"add to ARQ_SURFACE: {sorted(overridden - set(ARQ_SURFACE))}"


def test_start_jobs_calls_run_job_as_arq_defines_it():
    assert list(inspect.signature(Worker.run_job).parameters) == ["self", "job_id", "score"]
