"""structlog configuration, in one place: JSON lines (or a console view), stdlib logs routed in."""

import logging
import sys

import orjson
import structlog

from jobfleet.secret_names import MASK, is_secret, mask


def drop_secrets(_: object, __: str, event: dict) -> dict:
    """Values of fields named like secrets (jobfleet.secret_names) never reach a log line, whatever
    a caller binds, nested values included."""
    for key, value in event.items():
        if is_secret(key):
            event[key] = MASK
        elif isinstance(value, dict | list | tuple):
            event[key] = mask(value)
    return event


def configure(level: str = "INFO", fmt: str = "json", *, stderr: bool = False) -> None:
    out = sys.stderr if stderr else sys.stdout
    shared: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_secrets,
    ]
    if fmt == "json":
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(out.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(out)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: render them as the same JSON lines, on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(),
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # arq's own per-job lines would repeat ours (and print payloads): the fleet logs every job and
    # records every failure itself.
    logging.getLogger("arq").setLevel(logging.CRITICAL)
    for noisy in ("googleapiclient.discovery_cache", "httpx", "stripe", "asyncmy"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
