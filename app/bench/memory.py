"""A process's resident memory, now and at its highest, and its CPU time."""

from __future__ import annotations

import threading

import psutil


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / 2**20)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process so far (0 for pid 0: no process)."""
    if not pid:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class PeakRss:
    """The highest RSS of a process, sampled 4 times a second by a thread until stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            try:
                self.mb = max(self.mb, rss_mb(self.pid))
            except psutil.Error:
                return  # the process has ended
            if self._stopped.wait(0.25):
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
