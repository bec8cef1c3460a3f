"""The pure policy core: no I/O, no clocks, no Kafka. Same code live and in replay.

An install compiles these modules with mypyc where it can (see setup.py). Python loads a compiled
module in preference to its source, so a build older than its source would run the old code:
`refuse_stale_builds()` says so, and how to rebuild. The `tact` command and the test session
call it before anything else (importing the core does no work of its own).
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

CORE_DIR = Path(__file__).parent
COMPILED_DIRS = (CORE_DIR, CORE_DIR.parent / "codecs")  # setup.py compiles modules in both
EDIT_GRACE_S = 2.0  # copying a tree can stamp a build a moment before its source


class StaleBuildError(ImportError):
    pass


def stale_builds(folder: Path = CORE_DIR) -> list[str]:
    """Sources in `folder` changed since their compiled build beside them was made."""
    return [
        source.name
        for source in sorted(folder.glob("*.py"))
        for build in (source.with_name(source.stem + suffix) for suffix in EXTENSION_SUFFIXES)
        if build.exists() and source.stat().st_mtime > build.stat().st_mtime + EDIT_GRACE_S
    ]


def refuse_stale_builds(*folders: Path) -> None:
    for folder in folders or COMPILED_DIRS:
        stale = stale_builds(folder)
        if stale:
            raise StaleBuildError(
                f"{', '.join(stale)} in {folder} changed after it was compiled, so the old code "
                "would run. Rebuild it with `.venv/bin/pip install -e .`, or delete "
                f"{folder}/*.so to run it interpreted."
            )
