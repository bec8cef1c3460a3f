"""A `tact worker` in a process of its own, and what its /metrics say: for `tact demo`,
`tact bench` and the broker tests alike."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app.broker import free_port

# For the embedded broker: a group join there takes half the session timeout (see config.py),
# and the timeouts below keep a test's or a demo's worker quick to start and to take over.
EMBEDDED_WORKER_ENV = {
    "TACT_BROKER_KIND": "tansu",
    "TACT_REBALANCE_TIMEOUT_S": "3",
    "TACT_METRICS_HOST": "127.0.0.1",
}


def samples_in(text: str) -> list[Any]:
    """Every sample of a /metrics page, in Prometheus's text format."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def summed(samples: list[Any], name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0: none)."""
    return sum(
        float(sample.value)
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


class WorkerProcess:
    """One `python -m app worker`, its settings as TACT_* variables, its output in a log file."""

    def __init__(self, env: dict[str, str], data_dir: Path, log_path: Path) -> None:
        self.env = env
        self.data_dir = data_dir
        self.log_path = log_path
        self.metrics_port = free_port()
        self.view_port = int(env.get("TACT_VIEW_PORT") or free_port())
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            **EMBEDDED_WORKER_ENV,
            **self.env,
            "TACT_DATA_DIR": str(self.data_dir),
            "TACT_METRICS_PORT": str(self.metrics_port),
            "TACT_VIEW_PORT": str(self.view_port),
        }
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {time.strftime('%X')} =====\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """kill -9: no goodbye, no flush, no commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def samples(self) -> list[Any]:
        """Every sample its /metrics endpoint shows now (none if it does not answer)."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return []
        return samples_in(text)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0: none)."""
        return summed(self.samples(), name, **labels)

    def probe(self, name: str) -> tuple[int, str]:
        """GET /health/<name> (live, ready): the status code and the reason given (0: no
        answer)."""
        url = f"http://127.0.0.1:{self.metrics_port}/health/{name}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode().strip()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode().strip()
        except OSError as error:  # not listening yet (or any more)
            return 0, str(error)

    def series(self, name: str) -> int:
        """How many time series called `name` it exports."""
        return sum(1 for sample in self.samples() if sample.name == name)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int) -> str:
        """The last `lines` lines of its log, for a failure's message."""
        return "\n".join(self.log_text().splitlines()[-lines:])
