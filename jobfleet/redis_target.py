"""Where Redis is: one server by URL, or a master found through Redis Sentinel.

Every part of the fleet (workers, scheduler, producer, dashboard, CLI) builds its clients here, so
all of them follow a Sentinel failover the same way: a client asks Sentinel for the master's
address whenever it opens a connection, and a connection that meets a demoted master is dropped
(redis-py raises ``ConnectionError``), so the next command reaches the promoted one.

Forms:
- ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``): one server.
- ``redis+sentinel://[:password@]host:port,host:port/master[/db]``: Sentinel addresses and the
  master's name; the password is the master's.
- A plain URL plus ``sentinels="host:port,host:port"`` and ``master="name"``: the URL gives
  database and password, Sentinel the address (``JOBFLEET_REDIS_SENTINELS`` and
  ``JOBFLEET_REDIS_SENTINEL_MASTER``).

Parsing only, free of any client library (the settings module reads it); ``jobfleet.connect``
builds the clients.
"""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


class RedisTargetError(ValueError):
    """A Redis address that cannot be used; the message says what is wrong."""


def parse_addresses(text: str) -> tuple[tuple[str, int], ...]:
    addresses = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
        host = host.strip("[]")
        if not host:
            raise RedisTargetError(f"Sentinel address {item!r} has no host")
        try:
            addresses.append((host, int(port) if port else DEFAULT_SENTINEL_PORT))
        except ValueError:
            raise RedisTargetError(f"Sentinel address {item!r} has a port that is not a number") from None
    if not addresses:
        raise RedisTargetError("no Sentinel address given")
    return tuple(addresses)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, *, sentinels: str | None = None, master: str | None = None) -> "RedisTarget":
        parts = urlsplit(url)
        if parts.scheme == SENTINEL_SCHEME:
            # urlsplit cannot read several host:port pairs as a netloc: take it apart by hand
            credentials, _, hosts = parts.netloc.rpartition("@")
            username, _, password = credentials.partition(":")
            path = [p for p in parts.path.split("/") if p]
            if not path:
                raise RedisTargetError(f"{SENTINEL_SCHEME}:// URL names no master: .../MASTER[/DB]")
            return cls(
                sentinels=parse_addresses(sentinels or hosts),
                master=master or unquote(path[0]),
                db=_db(path[1] if len(path) > 1 else "0"),
                username=unquote(username) or None,
                password=unquote(password) or None,
            )
        if sentinels or master:
            if not (sentinels and master):
                raise RedisTargetError("Sentinel needs both the addresses and the master's name")
            return cls(
                sentinels=parse_addresses(sentinels),
                master=master,
                db=_db(parts.path.strip("/") or "0"),
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
            )
        return cls(url=url)

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.sentinels)

    def describe(self) -> str:
        """Where Redis is, without credentials: for logs and error messages."""
        if self.uses_sentinel:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"master {self.master!r} via Sentinel {hosts} (db {self.db})"
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _db(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RedisTargetError(f"Redis database {text!r} is not a number") from None
