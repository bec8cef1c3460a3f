"""Run one Tact worker process until it is told to stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from app.collector import collector_for_deciding
from app.config import Settings
from app.kafka_security import client_options
from app.metrics import Metrics
from app.stream.app import build_app


class KafkaUnreachable(Exception):
    pass


def check_kafka(settings: Settings, wait_s: float = 10.0) -> None:
    """Reach the brokers before anything starts (or is created on disk): a worker pointed at
    the wrong place says so in one line instead of a traceback and a page of shutdown."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # each failed try would log a line of its own
    try:
        _bootstrap_within(settings, wait_s)
    finally:
        client_log.setLevel(level)


def _bootstrap_within(settings: Settings, wait_s: float) -> None:
    retrying = Retrying(
        stop=stop_after_delay(wait_s),
        wait=wait_fixed(1.0),
        retry=retry_if_exception_type(KafkaError),
        reraise=True,
    )
    try:
        retrying(lambda: asyncio.run(_bootstrap(settings, wait_s)))
    except KafkaError as exc:
        raise KafkaUnreachable(
            f"cannot reach Kafka at {settings.bootstrap_servers} (TACT_BROKER) within "
            f"{wait_s:.0f} s: {exc}"
        ) from None


async def _bootstrap(settings: Settings, wait_s: float) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(wait_s * 1000),
        **client_options(settings),
    )
    try:
        await admin.start()
    finally:
        await admin.close()


LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


def logging_config(level: str, log_format: str) -> dict[str, Any] | None:
    """For --log-format json: one JSON object per line on stderr (None: Faust's own lines)."""
    if log_format != "json":
        return None
    name = LEVELS.get(level, level.upper())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
                "level": name,
            }
        },
        "root": {"level": name, "handlers": ["default"]},
    }


def run_worker(settings: Settings) -> None:
    metrics = Metrics()
    app = build_app(settings, metrics=metrics)
    probes = {"/health/live": app.health.live, "/health/ready": app.health.ready}
    metrics.serve(settings.metrics_host, settings.metrics_port, probes)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_format),
        redirect_stdouts=False,
        quiet=True,
    )
    # No terminal spinner: at level warn and above it would set the root logger to DEBUG, and
    # every debug call in aiokafka would then build a log record (5% of a busy worker).
    worker.spinner = None
    with collector_for_deciding():
        worker.execute_from_commandline()
