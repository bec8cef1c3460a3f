"""Commands as an operator meets them: a broker stopped by SIGTERM leaves nothing behind; a
worker pointed at no Kafka says so in one line and creates nothing; JSON logs are JSON."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import signal
import subprocess
import sys

import psutil
import pytest

from app.broker import free_port
from app.waiting import wait_until
from app.worker import logging_config

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    return any(c.laddr.port == port and c.status == "LISTEN" for c in psutil.net_connections())


def test_sigterm_stops_the_embedded_broker_and_frees_its_port():
    port = free_port()
    command = subprocess.Popen(
        [sys.executable, "-m", "app", "broker", "--port", str(port)], stderr=subprocess.PIPE
    )
    wait_until(lambda: _listening(port), 30, "the broker to listen")
    children = psutil.Process(command.pid).children(recursive=True)
    assert children, "the broker runs as a child process"
    command.send_signal(signal.SIGTERM)
    assert command.wait(timeout=20) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"
    assert not _listening(port)


def test_a_worker_with_no_kafka_prints_one_line_and_creates_nothing(tmp_path):
    env = {
        **os.environ,
        "TACT_BROKER": f"kafka://127.0.0.1:{free_port()}",
        "TACT_CONNECT_TIMEOUT_S": "1",
        "TACT_METRICS_PORT": "0",
    }
    env.pop("TACT_DATA_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "app", "worker"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach Kafka at 127.0.0.1:")
    assert list(tmp_path.iterdir()) == []


def test_json_logs_are_one_object_per_line(capsys):
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        logging.config.dictConfig(logging_config("info", "json"))
        logging.getLogger("app.test").info("partition %d is ready", 3)
        logging.getLogger("app.test").debug("not shown")
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == "partition 3 is ready" and record["level"] == "INFO"
    assert record["logger"] == "app.test" and "time" in record
    assert logging_config("info", "text") is None
