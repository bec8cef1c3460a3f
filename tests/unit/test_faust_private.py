"""The private Faust, mode and aiokafka names Tact relies on still exist in the installed ones."""

from __future__ import annotations

import inspect

import pytest

from app.stream.faust_private import REQUIRED


def defines(owner: type, name: str) -> bool:
    """Defined on the class or a base, declared there, or assigned as self.<name>."""
    for cls in inspect.getmro(owner):
        if name in vars(cls) or name in getattr(cls, "__annotations__", {}):
            return True
        library = cls.__module__.split(".")[0] in ("faust", "mode", "aiokafka")
        if library and any(f"self.{name}{end}" in inspect.getsource(cls) for end in " :"):
            return True
    return False


@pytest.mark.parametrize("owner,name", REQUIRED, ids=[f"{o.__name__}.{n}" for o, n in REQUIRED])
def test_a_private_name_tact_uses_is_still_there(owner, name):
    assert defines(owner, name), (
        f"{owner.__module__}.{owner.__name__}.{name} is gone: an upgrade changed what "
        "app/stream/faust_private.py relies on; rework that function before upgrading"
    )


def test_an_unknown_name_is_noticed():
    assert not defines(REQUIRED[0][0], "_no_such_attribute")
