"""Private PostgreSQL, MariaDB and Redis servers for the chaos tests that restart one mid-run.

The machine's shared servers serve every other test run, so a test that restarts a server starts
its own: a fresh data directory in a temporary directory, a random free port on 127.0.0.1, and
no authentication. ``restart`` stops the server the way the test names (a fast shutdown, or a
kill -9 that leaves crash recovery to the next start) and starts it on the same port and data.
Each class is a context manager that stops its server and removes its files on exit.
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen | None, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {_tail(log)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


class _Server:
    prefix = "jf-server-"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.port = free_port()
        self.log = self.root / "server.log"

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class PrivatePostgres(_Server):
    """``initdb`` + ``pg_ctl``; as root (PostgreSQL refuses it) the server runs as user postgres."""

    prefix = "jf-pg-"

    def __init__(self) -> None:
        super().__init__()
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not candidates:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(candidates[-1]).parent
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=self.user,
            check=True,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
            )
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.log), "-w", "start")

    def restart(self) -> None:
        """A fast shutdown (open transactions abort, clients are disconnected) and a start."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.log), "-m", "fast", "-w",
            "restart",
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


class PrivateMariaDB(_Server):
    """``mariadb-install-db`` + ``mariadbd`` without grant tables: root, no password.

    With ``general_log`` the server writes every statement it receives, as it receives it, to
    ``general_log_path`` (kept across restarts, with a header at each start): what a test checks
    against is then what the server ran, not what the code under test says it did."""

    prefix = "jf-mariadb-"

    def __init__(self, *, general_log: bool = False) -> None:
        super().__init__()
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.process: subprocess.Popen | None = None
        self.user = ["--user=root"] if os.geteuid() == 0 else []
        self.general_log_path = self.root / "general.log"
        self.logging = (
            [f"--general-log-file={self.general_log_path}", "--general-log=1"] if general_log else []
        )

    @property
    def dsn(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/"

    def start(self) -> None:
        if not self.data.exists():
            subprocess.run(
                [
                    "mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--skip-test-db",
                    "--auth-root-authentication-method=normal", *self.user,
                ],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    server, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
                    f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.root}/mysqld.pid",
                    "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=128M",
                    "--innodb-flush-log-at-trx-commit=2", *self.logging, *self.user,
                ],
                stdout=log, stderr=log,
            )  # fmt: skip
        _wait_for_port(self.port, self.process, "mariadbd", self.log)

    def kill(self) -> None:
        """kill -9: a crash; InnoDB rolls back what was not committed when it next starts."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class PrivateRedis(_Server):
    """``redis-server`` with an append-only file, so a restart keeps queues, keys and ticks."""

    prefix = "jf-redis-"

    def __init__(self) -> None:
        super().__init__()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                    "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                ],
                stdout=log, stderr=log,
            )  # fmt: skip
        _wait_for_port(self.port, self.process, "redis-server", self.log)

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits, dropping every client."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def stopped(server: PrivateRedis):
    """Redis away for the duration of the block, then back on the same port and data."""
    server.stop()
    try:
        yield
    finally:
        server.start()


class SentinelGroup:
    """A Redis master, its replicas and three Sentinels watching it, all private on loopback.

    ``kill_master`` is kill -9 of the master's process; the Sentinels then promote a replica. The
    replicas keep no files: a failover, not a restart, is what the tests exercise.
    """

    MASTER_NAME = "jobfleet"

    def __init__(self, replicas: int = 2, sentinels: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jf-sentinel-"))
        self.ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.processes: dict[int, subprocess.Popen] = {}

    def __enter__(self) -> Self:
        try:
            for i, port in enumerate(self.ports):
                self._redis(port, replica_of=None if i == 0 else self.ports[0])
            for port in self.sentinel_ports:
                self._sentinel(port)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.MASTER_NAME}/{db}"

    def _spawn(self, port: int, argv: list[str], what: str) -> None:
        log = self.root / f"{port}.log"
        with open(log, "ab") as out:
            self.processes[port] = subprocess.Popen(argv, stdout=out, stderr=out, cwd=self.root)
        _wait_for_port(port, self.processes[port], what, log)

    def _redis(self, port: int, replica_of: int | None) -> None:
        argv = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.root),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dbfilename", f"{port}.rdb",
        ]  # fmt: skip
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(port, argv, f"redis-server {port}")

    def _sentinel(self, port: int) -> None:
        config = self.root / f"sentinel-{port}.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.ports[0]} 2\n"
            f"sentinel down-after-milliseconds {self.MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {self.MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {self.MASTER_NAME} 1\n"
        )
        binary = shutil.which("redis-sentinel")
        argv = [binary, str(config)] if binary else ["redis-server", str(config), "--sentinel"]
        self._spawn(port, argv, f"redis-sentinel {port}")

    def master_port(self) -> int:
        """The master's port, as the first Sentinel reports it now."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.sentinel_ports[0]), "SENTINEL", "get-master-addr-by-name",
             self.MASTER_NAME],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        return int(out[1])

    def kill_master(self) -> int:
        port = self.master_port()
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()
        return port

    def wait_for_replicas(self, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = subprocess.run(
                ["redis-cli", "-p", str(self.master_port()), "INFO", "replication"],
                capture_output=True, text=True,
            ).stdout  # fmt: skip
            if f"connected_slaves:{count}" in info and info.count("state=online") >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the master has not {count} replica(s) online after {timeout_s} s")
