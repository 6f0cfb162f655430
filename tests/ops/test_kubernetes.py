"""ops/kubernetes: every manifest validates against the Kubernetes schemas (KEDA's ScaledObject
against the subset of its schema we use), every variable the pods get is one the settings module
knows, the pieces refer to each other correctly, and the worker's probes answer from its heartbeat."""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cli.main import build_parser
from jobfleet import keys
from jobfleet.settings import Settings
from workers import probe

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "ops" / "kubernetes"
SCALED_OBJECT_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "keda-scaledobject.json").read_text())
K8S_VERSION = "1.30.0"


def documents() -> list[dict]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def of_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def validate(doc: dict) -> None:
    if doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates(doc):
    validate(doc)


def test_validation_rejects_a_broken_manifest():
    deployment = json.loads(json.dumps(of_kind("Deployment")["worker-default"]))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    deployment = json.loads(json.dumps(of_kind("Deployment")["worker-default"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]["cmd"] = ["x"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    scaled = json.loads(json.dumps(of_kind("ScaledObject")["worker-calendar"]))
    del scaled["spec"]["triggers"][0]["metadata"]["query"]
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


def variables() -> dict[str, str]:
    found = {}
    for name, config in of_kind("ConfigMap").items():
        found.update({k: f"ConfigMap {name}" for k in config["data"]})
    for name, secret in of_kind("Secret").items():
        found.update({k: f"Secret {name}" for k in secret["stringData"]})
    for name, deployment in of_kind("Deployment").items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            found.update({e["name"]: f"Deployment {name}" for e in container.get("env", [])})
    return found


def test_every_variable_the_pods_get_is_a_setting():
    known = {f"JOBFLEET_{name.upper()}" for name in Settings.model_fields}
    unknown = {k: where for k, where in variables().items() if k not in known}
    assert not unknown, f"variables no setting reads: {unknown}"
    assert {"JOBFLEET_REDIS_URL", "JOBFLEET_PINTEACH_DSN", "JOBFLEET_PICKATALE_DSN"} <= set(variables())


def test_the_pods_get_their_config_and_secrets():
    for name, deployment in of_kind("Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"configMapRef": "jobfleet-config", "secretRef": "jobfleet-secrets"}, name


def workers() -> dict[str, dict]:
    return {n: d for n, d in of_kind("Deployment").items() if n.startswith("worker-")}


def test_workers_serve_real_queues_with_grace_above_the_shutdown_grace():
    config = of_kind("ConfigMap")["jobfleet-config"]["data"]
    grace_s = float(config["JOBFLEET_SHUTDOWN_GRACE_S"])
    parser = build_parser()
    served = set()
    for name, deployment in workers().items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace_s, name
        (container,) = pod["containers"]
        args = parser.parse_args(container["args"])
        assert args.command == "worker", name
        served.update(args.queue)
        for probe_name in ("readinessProbe", "livenessProbe"):
            command = container[probe_name]["exec"]["command"]
            assert command[0] == "jobfleet"
            assert parser.parse_args(command[1:]).command == "probe", (name, probe_name)
    assert served == set(keys.QUEUE_ALIASES), "every queue has a worker Deployment"


def test_every_worker_has_a_disruption_budget_and_a_scaler_on_its_queue():
    budgets = of_kind("PodDisruptionBudget")
    scalers = of_kind("ScaledObject")
    for name, deployment in workers().items():
        pods = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pods.items(), name
        scaler = scalers[name]
        assert scaler["spec"]["scaleTargetRef"]["name"] == name
        queue = pods["jobfleet/queue"]
        (trigger,) = scaler["spec"]["triggers"]
        assert f'jobfleet_queue_depth{{queue="{queue}"}}' in trigger["metadata"]["query"]
    assert scalers["worker-calendar"]["spec"]["minReplicaCount"] == 0, "calendar scales to zero"


def test_the_dashboard_has_a_service_on_its_port():
    deployment = of_kind("Deployment")["dashboard"]
    service = of_kind("Service")["dashboard"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    port = container["ports"][0]["containerPort"]
    assert str(port) in container["args"] and service["spec"]["ports"][0]["targetPort"] == "http"


def test_probe_rules_read_the_heartbeat_file(tmp_path):
    path = tmp_path / "health.json"
    assert probe.check(path, "live", 5)[0] is False  # not started yet
    path.write_text('{"heartbeat": 1}')
    assert probe.check(path, "live", 5) == (
        False,
        f"the heartbeat file at {path} is not one the worker wrote",
    )
    probe.record(path, worker_id="w1", redis_ok=True)
    written = json.loads(path.read_text())
    now = written["attempt_at"]
    assert probe.check(path, "live", 5, now=now + 14)[0] is True
    assert probe.check(path, "ready", 5, now=now + 14)[0] is True
    healthy, why = probe.check(path, "live", 5, now=now + 16)
    assert healthy is False and "heartbeat loop of worker w1" in why and "limit 15 s" in why
    # Redis away: the loop still beats (alive) but the health record goes stale (not ready)
    probe.record(path, worker_id="w1", redis_ok=False)
    later = json.loads(path.read_text())["attempt_at"]
    assert probe.check(path, "live", 5, now=later)[0] is True
    assert probe.check(path, "ready", 5, now=now + 16)[0] is False


async def test_a_running_worker_is_live_and_ready(env, redis, tmp_path):
    health_file = tmp_path / "health.json"
    worker_env = {
        **env,
        "JOBFLEET_HEALTH_FILE": str(health_file),
        "JOBFLEET_HEALTH_INTERVAL_S": "0.5",
        "JOBFLEET_SHUTDOWN_GRACE_S": "2",
    }

    async def jobfleet(*args: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            *args,
            env=worker_env,
            cwd=os.getcwd(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await process.wait()

    assert await jobfleet("probe", "ready") == 1, "no worker yet: not ready"
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "worker",
        "--queue",
        "default",
        "--no-scheduler",
        env=worker_env,
        cwd=os.getcwd(),
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(60):
            while await jobfleet("probe", "ready") != 0:
                await asyncio.sleep(0.2)
        assert await jobfleet("probe", "live") == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 30)
