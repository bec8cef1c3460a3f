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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The broker tests share the session's one broker, so they run in one process, in order;
    every other test is a unit of its own and runs beside them."""
    from xdist.scheduler import LoadScopeScheduling

    class BrokerTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            in_integration = "/integration/" in "/" + nodeid.split("::")[0]  # from any rootdir
            return "broker" if in_integration else nodeid

    return BrokerTestsTogether(config, log)
