"""How the core runs: compiled by the install, and with the cycle collector set for deciding."""

import gc
import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from types import BuiltinFunctionType, FunctionType

import pytest

from app.collector import THRESHOLDS, collector_for_deciding, untrack
from app.policy import CORE_DIR, StaleBuildError, refuse_stale_builds, stale_builds
from app.policy.engine import apply_record
from app.policy.model import CustomerState, Urgency
from tests.builders import at, candidate, default_policy, event, profile

NOT_COMPILED = {"__init__", "valueclass"}  # as setup.py leaves them out


def compiled_modules() -> dict[str, bool]:
    names = sorted(path.stem for path in CORE_DIR.glob("*.py") if path.stem not in NOT_COMPILED)
    return {
        name: not str(importlib.import_module(f"app.policy.{name}").__file__).endswith(".py")
        for name in names
    }


def test_the_core_runs_wholly_compiled_or_wholly_interpreted() -> None:
    """With a C compiler the install compiles every module; without one, none (setup.py)."""
    modes = compiled_modules()
    assert len(set(modes.values())) == 1, f"a partial build: {modes}"
    from app.policy.timeline import decide

    assert isinstance(decide, FunctionType) is not all(modes.values())


def test_the_interpreted_core_decides_exactly_as_the_installed_one(tmp_path) -> None:
    """The same replay through the core as installed (compiled where a compiler was found) and
    through its sources alone: the README promises the same behaviour either way."""
    import json
    import random
    import shutil
    import subprocess
    import sys

    from app.traffic import activity, now_ms, random_profiles

    sources = tmp_path / "src"
    shutil.copytree(CORE_DIR.parent, sources / "app", ignore=shutil.ignore_patterns("*.so"))
    rng = random.Random(9)
    records = random_profiles(rng, 20, ["UTC", "Europe/Berlin"])
    records += activity(rng, 20, 800, now_ms(), 3_600_000)
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in records))

    def replay(pythonpath: str) -> tuple[str, bytes]:
        out = tmp_path / "out.jsonl"
        code = (
            "import sys, app.policy.decide as d; from app.cli import main;"
            "print(d.__file__, file=sys.stderr); main()"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                "simulate",
                "--events",
                str(tmp_path / "in.jsonl"),
                "--out",
                str(out),
            ],
            env={**os.environ, "PYTHONPATH": pythonpath},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stderr.splitlines()[0], out.read_bytes()

    interpreted_file, interpreted = replay(str(sources))
    _, installed = replay("")
    assert interpreted_file.endswith(".py"), interpreted_file
    assert interpreted == installed and interpreted.count(b"\n") > 500


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


def a_customer_with_history() -> CustomerState:
    """Sends awaiting delivery, a held candidate, an event: a state with many parts."""
    policy, state = default_policy(), CustomerState("c1", profile())
    inputs = [candidate(f"m{i}", channels=("push", "sms"), created_at=at(i)) for i in range(3)]
    inputs += [event(occurred_at=at(4)), candidate("late", urgency=Urgency.LOW, created_at=at(12))]
    for item in inputs:
        state = apply_record(state, item, at(12), policy).kept
    return state


def tracked_parts(value: object) -> list[object]:
    """What the collector would walk through from `value`, shared things (types) aside."""
    found, seen, todo = [], set(), [value]
    while todo:
        part = todo.pop()
        if id(part) in seen or isinstance(part, type) or not gc.is_tracked(part):
            continue
        seen.add(id(part))
        found.append(part)
        todo.extend(gc.get_referents(part))
    return found


def test_the_collector_is_spared_states_wherever_the_core_is_compiled() -> None:
    """One C compiler builds both (setup.py): untrack is there exactly when the core is."""
    assert isinstance(untrack, BuiltinFunctionType) is all(compiled_modules().values())


@pytest.mark.skipif(not isinstance(untrack, BuiltinFunctionType), reason="built without C")
def test_untrack_takes_a_state_and_all_it_holds_out_of_the_collectors_sight() -> None:
    state = a_customer_with_history()
    assert state.awaiting and state.pending
    parts = len(tracked_parts(state))
    assert parts > 20 and untrack(state) == parts
    assert tracked_parts(state) == [] and gc.is_tracked(type(state))  # its class is shared
    later = apply_record(state, candidate("m9", created_at=at(13)), at(13), default_policy()).kept
    assert 0 < untrack(later) < parts / 2  # only what it does not share with the state before
