"""The fleet's configuration: the only module that reads the environment.

Entry points build one ``Settings`` and pass it (or the typed dependencies built from it) down.
"""

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobfleet.redis_target import RedisTarget, RedisTargetError

SCHEDULES_DIR = Path(__file__).resolve().parent.parent / "schedules"


def _check_scheme(url: str, allowed: tuple[str, ...], what: str) -> str:
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    if scheme not in allowed:
        raise ValueError(f"{what} must be a URL starting with {' or '.join(s + '://' for s in allowed)}")
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOBFLEET_", extra="ignore", frozen=True, populate_by_name=True
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis Sentinel (or a redis+sentinel:// URL): "host:port,host:port" and the master's name
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = None
    # Opt-in durable enqueue: the producer waits until this many replicas hold each job (WAIT)
    redis_durable_replicas: int = Field(default=0, ge=0, le=10)
    redis_durable_timeout_s: float = Field(default=1.0, gt=0, le=30)
    pinteach_dsn: str = "postgresql://postgres@127.0.0.1:5432/pinteach"
    pickatale_dsn: str = "mysql://root@127.0.0.1:3306/"
    # Prepended to Pickatale's database names (account_center, telemetry, ...): lets tests and the
    # demo run beside a real Pickatale on one server.
    pickatale_db_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_]*$", max_length=32)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # Worker runtime
    worker_max_jobs: int = Field(default=100, ge=1, le=1000)
    worker_poll_delay_s: float = Field(default=0.01, gt=0, le=10)
    shutdown_grace_s: float = Field(default=30, ge=0, le=3600)
    health_interval_s: float = Field(default=5, gt=0, le=300)
    # a local file the heartbeat rewrites each beat, for container probes (`jobfleet probe`)
    health_file: Path | None = None
    scheduler_enabled: bool = True
    schedules_file: Path = SCHEDULES_DIR / "schedules.toml"
    retention_file: Path = SCHEDULES_DIR / "retention.toml"

    # Outbox relay (PinTeach job_outbox): every worker process relays committed rows to the queues
    outbox_relay_enabled: bool = True
    outbox_listen: bool = True  # LISTEN job_outbox for wake-ups; off: the periodic sweep alone
    outbox_sweep_s: float = Field(default=1.0, gt=0, le=3600)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)

    # Sweeps
    # Rows per batch (one transaction) are chosen by time: the first batch takes sweep_batch_first,
    # then batches grow while they commit in well under sweep_batch_target_ms and shrink when they
    # take longer; sweep_batch_size caps them.
    sweep_batch_size: int = Field(default=5000, ge=1, le=50_000)
    sweep_batch_first: int = Field(default=500, ge=1, le=50_000)
    sweep_batch_target_ms: float = Field(default=250, gt=0, le=60_000)
    sweep_budget_s: float = Field(default=240, gt=0)
    auto_complete_grace_s: float = Field(default=900, ge=0)
    credits_expiry_notice_days: float = Field(default=7, ge=0)
    waitlist_offer_hours: float = Field(default=48, gt=0)
    hold_ttl_minutes: float = Field(default=30, gt=0)
    license_grace_days: float = Field(default=7, ge=0)
    gdpr_erase_batch_size: int = Field(default=20, ge=1, le=1000)
    # lifecycle.detect re-reads sessions that ended this long before its last run (late completions)
    lifecycle_lookback_days: float = Field(default=7, ge=0)
    # a run without a mark looks at every student: it gets more time than the usual sweep budget
    lifecycle_budget_s: float = Field(default=1500, gt=0)

    # Retention (the policies themselves are data: retention_file)
    retention_budget_s: float = Field(default=3000, gt=0)

    # Pickatale learner erasure: a learner's rows go in chunks like the purge's, each sized so its
    # transaction takes about the target (the rows are scattered: a page and five index entries
    # touched per row, where the purge's are dense), never more than the chunk size
    learner_erase_chunk_size: int = Field(default=5000, ge=1, le=100_000)
    learner_erase_chunk_target_ms: float = Field(default=200, gt=0, le=10_000)
    learner_erase_pause_s: float = Field(default=0.05, ge=0, le=60)
    learner_erase_budget_s: float = Field(default=600, gt=0)

    # Stripe
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_timeout_s: float = Field(default=10, gt=0, le=120)
    # Calls in flight at once within one batch.
    stripe_concurrency: int = Field(default=8, ge=1, le=100)
    # Rows locked per transaction while their Stripe calls run: small, so that the locks are short.
    stripe_batch_size: int = Field(default=25, ge=1, le=1000)

    # Calendars and Drive
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_api_endpoint: str | None = None  # None: Google's own; else a root URL, each API adds its path
    drive_timeout_s: float = Field(default=30, gt=0, le=300)
    google_token_uri: str = "https://oauth2.googleapis.com/token"
    microsoft_client_id: str | None = None
    microsoft_client_secret: SecretStr | None = None
    microsoft_tenant: str = "common"
    microsoft_authority_host: str = "https://login.microsoftonline.com"
    graph_api_base: str = "https://graph.microsoft.com/v1.0"
    calendar_max_attempts: int = Field(default=8, ge=1)
    calendar_backoff_base_s: float = Field(default=60, gt=0)
    calendar_backoff_cap_s: float = Field(default=6 * 3600, gt=0)
    calendar_http_timeout_s: float = Field(default=20, gt=0, le=120)
    calendar_sweep_concurrency: int = Field(default=4, ge=1, le=32)
    # Extra CA bundle for the providers' HTTPS endpoints (tests, proxies); None: the system's CAs.
    calendar_ca_file: Path | None = None

    # Dashboard
    dashboard_token: SecretStr | None = None
    dashboard_user: str | None = None
    dashboard_password: SecretStr | None = None
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8765, ge=1, le=65535)
    # domain-health queries run at most once per this many seconds, whoever asks (pages, /metrics)
    domain_health_cache_s: float = Field(default=30, ge=0)
    domain_health_timeout_s: float = Field(default=5, gt=0)

    # Tracing: OpenTelemetry's own variables turn it on (the exporter reads the rest of OTEL_*)
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    otel_traces_exporter: str | None = Field(default=None, validation_alias="OTEL_TRACES_EXPORTER")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")

    # Finished jobs kept in each history index (all, per job name, per status)
    history_max_jobs: int = Field(default=200_000, ge=100)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        return _check_scheme(v, ("redis", "rediss", "unix"), "a Redis URL")

    @model_validator(mode="after")
    def _redis_target(self) -> "Settings":
        try:
            self.redis_target  # noqa: B018 (parsing is the check)
        except RedisTargetError as e:
            variable = "redis_sentinels" if self.redis_sentinels else "redis_url"
            raise ValueError(f"{variable}: {e}") from None
        return self

    @property
    def tracing_enabled(self) -> bool:
        """Off by default; on with an OTLP endpoint or ``OTEL_TRACES_EXPORTER=otlp|console``."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return False
        return self.otel_traces_exporter in ("otlp", "console") or bool(
            self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
        )

    @property
    def redis_target(self) -> RedisTarget:
        return RedisTarget.parse(
            self.redis_url, sentinels=self.redis_sentinels, master=self.redis_sentinel_master
        )

    @field_validator("stripe_api_base")
    @classmethod
    def _stripe_api_base(cls, v: str) -> str:
        return _check_scheme(v, ("https", "http"), "the Stripe API base").rstrip("/")

    @field_validator("pinteach_dsn")
    @classmethod
    def _pinteach_dsn(cls, v: str) -> str:
        return _check_scheme(v, ("postgresql", "postgres"), "the PinTeach DSN")

    @field_validator("pickatale_dsn")
    @classmethod
    def _pickatale_dsn(cls, v: str) -> str:
        return _check_scheme(v, ("mysql", "mariadb"), "the Pickatale DSN")


class ConfigError(Exception):
    """A missing or malformed setting; its message is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        field = str(first["loc"][0]) if first["loc"] else None
        if field is None and (named := message.partition(": "))[0] in Settings.model_fields:
            field, message = named[0], named[2]  # a check across fields names the one at fault
        variable = "JOBFLEET_" + field.upper() if field else "JOBFLEET_*"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{variable}: {message}{more}") from None
