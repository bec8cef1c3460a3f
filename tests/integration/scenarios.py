"""Building blocks of the broker tests: a policy without quiet hours, a steady feed of records,
a worker started with its customers' profiles read."""

from __future__ import annotations

import threading
import time

from app.traffic import now_ms
from tests.integration.conftest import wait_until
from tests.traffic import calm_zones, profiles

NO_QUIET_HOURS = 'version = "crash-test"\n' + "".join(
    line + "\n"
    for line in (
        "[[caps]]",
        'name = "rolling_24h"',
        "limit = 2",
        'window = "24h"',
        "[[caps]]",
        'name = "rolling_7d"',
        "limit = 5",
        'window = "7d"',
    )
)


class Feeder(threading.Thread):
    """Publishes records in the background at a steady pace, while the test kills workers."""

    def __init__(self, harness, records, per_second: int) -> None:
        super().__init__(daemon=True)
        self.harness, self.records, self.per_second = harness, records, per_second
        self.error: BaseException | None = None
        self.published = 0  # the records published so far: always a prefix of `records`
        self.stopping = threading.Event()

    def stop(self) -> list:
        """Publishes nothing more; returns what was published, which is what the test checks."""
        self.stopping.set()
        self.join()
        return self.records[: self.published]

    def run(self) -> None:
        try:
            encoded = self.harness.encode(self.records)
            chunk = max(self.per_second // 4, 1)
            for i in range(0, len(encoded), chunk):
                if self.stopping.is_set():
                    return
                started = time.monotonic()
                self.harness.publish_encoded(encoded[i : i + chunk])
                self.published = min(i + chunk, len(encoded))
                time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
        except BaseException as exc:
            self.error = exc


def worker_without_quiet_hours(harness, tmp_path, rng, customers, **env):
    """A worker on a policy with the default caps and no quiet hours, its customers' profiles
    read: (worker, the profiles, the policy file)."""
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(NO_QUIET_HOURS)
    worker, customer_profiles = start_with_profiles(harness, rng, customers, policy_path, **env)
    return worker, customer_profiles, policy_path


def start_with_profiles(harness, rng, customers, policy_path, **env):
    customer_profiles = profiles(rng, customers, calm_zones(now_ms()))
    worker = harness.worker(TACT_POLICY_PATH=str(policy_path), **env)
    harness.publish(customer_profiles)
    topic = harness.topics.profiles
    wait_until(
        lambda: worker.metric("tact_input_records_total", topic=topic) >= customers,
        120,
        "the profiles to be read",
    )
    return worker, customer_profiles


def wait_until_deciding(worker, harness, timeout=120, feeder=None):
    """Until this worker process has decided something itself (not just started), or the feeder
    has stopped: a worker restarted after the last record was decided and committed has nothing
    left to decide, and the test's final checks prove that nothing was left behind."""
    topic = harness.topics.candidates

    def deciding() -> bool:
        assert_running(worker)
        return worker.metric("tact_input_records_total", topic=topic) > 0 or (
            feeder is not None and not feeder.is_alive()
        )

    wait_until(deciding, timeout, "the restarted worker to decide")


def assert_running(worker) -> None:
    """A worker stops when a test stops or kills it, never on its own."""
    if not worker.alive:
        raise AssertionError(
            f"{worker.log_path.name}: the worker stopped on its own:\n{worker.log_tail(60)}"
        )
