"""How the core runs: compiled by the install, and with the cycle collector set for deciding."""

import gc
import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from types import FunctionType

import pytest

from app.collector import THRESHOLDS, collector_for_deciding
from app.policy import CORE_DIR, StaleBuildError, refuse_stale_builds, stale_builds

NOT_COMPILED = {"__init__", "valueclass"}  # as setup.py leaves them out


def test_the_install_compiled_every_module_of_the_policy_core() -> None:
    names = sorted(path.stem for path in CORE_DIR.glob("*.py") if path.stem not in NOT_COMPILED)
    interpreted = [
        name
        for name in names
        if str(importlib.import_module(f"app.policy.{name}").__file__).endswith(".py")
    ]
    assert not interpreted, f"run interpreted (did the C build fail? see setup.py): {interpreted}"
    from app.policy.decide import decide

    assert not isinstance(decide, FunctionType)


def test_a_source_changed_after_its_build_is_refused(tmp_path) -> None:
    source = tmp_path / "decide.py"
    source.write_text("")
    build = tmp_path / f"decide{EXTENSION_SUFFIXES[0]}"
    build.write_bytes(b"")
    (tmp_path / "caps.py").write_text("")  # no build: runs interpreted, nothing to refuse
    built_at = build.stat().st_mtime
    os.utime(source, (built_at - 1, built_at - 1))
    assert stale_builds(tmp_path) == []
    os.utime(source, (built_at + 1, built_at + 1))  # a copied tree: within the grace
    assert stale_builds(tmp_path) == []
    os.utime(source, (built_at + 60, built_at + 60))
    assert stale_builds(tmp_path) == ["decide.py"]
    with pytest.raises(StaleBuildError, match=r"decide\.py .*pip install -e \."):
        refuse_stale_builds(tmp_path)


def test_deciding_sets_the_collector_and_puts_it_back() -> None:
    before = gc.get_threshold()
    with collector_for_deciding():
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0  # what was loaded before is not walked again
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
