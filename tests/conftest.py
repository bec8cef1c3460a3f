"""The whole test session runs on the core as built: a build older than its source is refused."""

from __future__ import annotations

import pytest

from app.policy import StaleBuildError, refuse_stale_builds


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        refuse_stale_builds()
    except StaleBuildError as exc:
        pytest.exit(str(exc), returncode=4)
