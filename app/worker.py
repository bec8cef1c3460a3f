"""Run one Tact worker process until it is told to stop."""

from __future__ import annotations

import faust

from app.collector import collector_for_deciding
from app.config import Settings
from app.metrics import Metrics
from app.stream.app import build_app


def run_worker(settings: Settings) -> None:
    metrics = Metrics()
    metrics.serve(settings.metrics_host, settings.metrics_port)
    app = build_app(settings, metrics=metrics)
    worker = faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False, quiet=True)
    # No terminal spinner: at level warn and above it would set the root logger to DEBUG, and
    # every debug call in aiokafka would then build a log record (5% of a busy worker).
    worker.spinner = None
    with collector_for_deciding():
        worker.execute_from_commandline()
