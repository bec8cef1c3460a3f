"""Settings from the environment: a value that cannot work is refused with its name."""

from __future__ import annotations

import pytest

from app.config import Settings


def test_a_fetch_must_hand_over_at_least_one_record():
    assert Settings.from_env({}).fetch_max_records == 5000
    with pytest.raises(ValueError, match="fetch_max_records must be at least 1"):
        Settings.from_env({"TACT_FETCH_MAX_RECORDS": "0"})
