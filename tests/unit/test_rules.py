"""Policy files: the shipped default, and errors that say where and how to fix."""

from __future__ import annotations

import pytest

from app.policy.model import DAY, HOUR, Category, Urgency
from app.policy.rules import PolicyError, load_policy, parse_policy

MINIMAL = 'version = "v1"\n'


def test_shipped_default_says_what_the_brief_says():
    policy = load_policy()
    assert {(c.name, c.limit, c.window_ms) for c in policy.caps} == {
        ("rolling_24h", 2, 24 * HOUR),
        ("rolling_7d", 5, 7 * DAY),
    }
    assert policy.categories[Category.PROMO].bypass_caps is False
    assert all(
        policy.categories[c].bypass_caps and policy.categories[c].counts_toward_caps
        for c in (Category.SERVICE, Category.TRANSACTIONAL)
    )
    assert policy.quiet_hours is not None
    assert (policy.quiet_hours.start_s, policy.quiet_hours.end_s) == (21 * 3600, 9 * 3600)
    assert Urgency.IMMEDIATE not in policy.quiet_hours.urgencies
    assert policy.dedupe_window_ms == 7 * DAY
    assert sorted(policy.category_rank, key=policy.category_rank.get) == [
        Category.SERVICE,
        Category.TRANSACTIONAL,
        Category.PROMO,
    ]


def test_minimal_policy_has_no_caps_and_no_quiet_hours():
    policy = parse_policy(MINIMAL)
    assert policy.caps == () and policy.quiet_hours is None


def test_calendar_and_per_channel_caps():
    policy = parse_policy(
        MINIMAL
        + """
[[caps]]
name = "sms_daily"
limit = 1
calendar = "day"
channels = ["sms"]
categories = ["promo"]
"""
    )
    [cap] = policy.caps
    assert (cap.calendar, cap.channels, cap.categories) == ("day", {"sms"}, {Category.PROMO})


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", "version: missing"),
        (
            'version = "v"\n[dedupe]\nwindow = "7 days"\n',
            ":3: dedupe.window: '7 days' is not a duration",
        ),
        ('version = "v"\n[dedup]\nwindow = "7d"\n', "unknown key (did you mean 'dedupe'?)"),
        (
            'version = "v"\n[quiet_hours]\nstart = "25:00"\nend = "09:00"\n',
            ":3: quiet_hours.start: '25:00' is not a time of day",
        ),
        (
            'version = "v"\n[[caps]]\nname = "a"\nlimit = 1\nwindow = "1d"\n'
            '[[caps]]\nname = "b"\nlimit = -1\nwindow = "1d"\n',
            ":8: caps[1].limit: -1 must be a whole number >= 0",
        ),
        ('version = "v"\n[[caps]]\nname = "a"\nlimit = 1\n', "give exactly one of window"),
        (
            'version = "v"\n[[caps]]\nname = "a"\nlimit = 1\nwindow = "1d"\nchannels = ["fax"]\n',
            "caps[0].channels: 'fax' is not one of: email, sms, push, call, messenger",
        ),
        (
            'version = "v"\n[priority]\ncategories = ["promo", "service"]\n',
            "must rank every one of",
        ),
        (
            'version = "v"\n[categories.promo]\nbypass_caps = "yes"\n',
            "categories.promo.bypass_caps: 'yes' must be true or false",
        ),
        ('version = "v"\nlimits = 3\n', "limits: must be a table"),
        ("version = ", "not valid TOML"),
    ],
)
def test_errors_name_the_field_and_the_fix(text, expected):
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.toml")
    assert expected in str(error.value)
    assert str(error.value).startswith("p.toml")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.toml")
