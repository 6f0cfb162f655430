"""The producer library works in a virtual environment holding only arq, redis and pydantic."""

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, importlib.util, json, sys
for absent in ("sqlalchemy", "structlog", "asyncpg", "pydantic_settings", "orjson", "stripe"):
    assert importlib.util.find_spec(absent) is None, absent + " is installed in the clean venv"
from jobfleet.outbox import OutboxUnavailable
from jobfleet.producer import InvalidPayload, Job, Producer

async def main():
    async with Producer.from_url(sys.argv[1]) as producer:
        job_id = await producer.enqueue("fleet.sleep", {"ms": 3}, key="clean-venv")
        ids = await producer.enqueue_many([Job("fleet.noop"), Job("fleet.noop")])
        try:
            await producer.enqueue("fleet.sleep", {"ms": "x"})
        except InvalidPayload as e:
            error = str(e)
        try:  # the caller brings the database connection; nothing here imports a driver
            await producer.enqueue_in_transaction(object(), "fleet.noop")
        except OutboxUnavailable as e:
            outbox = str(e)
        raw = await producer.redis.get("arq:job:" + job_id)
        print(json.dumps({"job_id": job_id, "bulk": len(ids), "error": error, "outbox": outbox,
                          "doc": json.loads(raw)}))

asyncio.run(main())
"""


def test_producer_in_a_clean_venv(tmp_path, settings):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "arq", "redis", "pydantic"],
        check=True,
        timeout=300,
    )
    # the repository itself goes on the path, so nothing but the three packages is installed
    site = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "jobfleet-repo.pth").write_text(str(ROOT) + "\n")

    result = subprocess.run(
        [python, "-c", SCRIPT, settings.redis_url], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    import json

    out = json.loads(result.stdout)
    assert out["job_id"] == "fleet.sleep:clean-venv" and out["bulk"] == 2
    assert "invalid payload for job 'fleet.sleep'" in out["error"]
    assert "takes an asyncpg Connection or a SQLAlchemy AsyncConnection, not object" in out["outbox"]
    assert out["doc"]["f"] == "fleet.sleep" and out["doc"]["k"] == {"ms": 3}
    assert sys.executable != str(python)
