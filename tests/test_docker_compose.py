"""No Docker engine runs here: check that the compose file parses, that every file it mounts or
builds from exists, and that what it runs is a real command of the fleet."""

from pathlib import Path

import yaml

from cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_and_health_checks():
    services = compose()["services"]
    assert {"redis", "postgres", "mysql"} <= set(services)
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["mysql"]["image"].startswith("mysql:8")
    workers = [s for s in services.values() if s.get("command", [None])[0] == "worker"]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers) > 1, "more than one worker"
    for name, service in services.items():
        if "profiles" not in service:
            assert "healthcheck" in service, f"{name} has no health check"


def test_every_mounted_or_built_file_exists():
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        if "build" in service:
            context = ROOT / (
                service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            )
            dockerfile = context / "Dockerfile"
            assert dockerfile.exists()
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for source in line.split()[1:-1]:
                        assert (context / source).exists(), f"Dockerfile copies missing {source}"


def test_schema_files_mounted_are_the_projects_ddl():
    services = compose()["services"]
    assert "./db/schema/pinteach.sql" in services["postgres"]["volumes"][0]
    assert "./db/schema/pickatale.sql" in services["mysql"]["volumes"][0]


def test_worker_commands_parse():
    parser = build_parser()
    for service in compose()["services"].values():
        command = service.get("command")
        if command and command[0] in ("worker", "dashboard"):
            parser.parse_args(command)
