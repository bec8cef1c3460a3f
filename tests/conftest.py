"""The whole test session runs on the core as built: a build older than its source is refused."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy import StaleBuildError, refuse_stale_builds


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        refuse_stale_builds()
    except StaleBuildError as exc:
        pytest.exit(str(exc), returncode=4)


# Broker tests that start a broker of their own (`tact bench`, `tact demo`, the broker command)
# rather than use the session's: they need not wait in line for it.
OWN_BROKER = ("test_bench.py", "test_demo.py", "test_commands.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The broker tests share the session's one broker, so they run in one process, in order;
    every other test is a unit of its own and runs beside them."""
    from xdist.scheduler import LoadScopeScheduling

    class BrokerTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = "/" + nodeid.split("::")[0]  # from any rootdir
            shared = "/integration/" in path and not path.endswith(OWN_BROKER)
            return "broker" if shared else nodeid

    return BrokerTestsTogether(config, log)
