"""Policy files: the shipped default, and errors that say where and how to fix."""

from __future__ import annotations

import pytest

from app.policy.model import DAY, HOUR, Category, Urgency
from app.policy.policy_file import PolicyError, load_policy, parse_policy

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


@pytest.mark.parametrize(
    "text,expected",
    [
        ('[dedupe]\nwindow = "0s"\n', ":3: dedupe.window: '0s' must be from 1h to 90d"),
        ('[arbitration]\nwindow = "2h"\n', ":3: arbitration.window: '2h' must be from 0s to 1h"),
        ("[limits]\ncontext_events = 500\n", ":3: limits.context_events: 500 is more than 50"),
        ("[limits]\nmax_pending_per_customer = 0\n", ":3: limits.max_pending_per_customer: 0"),
        ('[categories.promo]\nconsent = "maybe"\n', ":3: categories.promo.consent: 'maybe'"),
        ('[channels]\nassume_reachable = ["fax"]\n', ":3: channels.assume_reachable: 'fax'"),
    ],
)
def test_values_that_would_break_a_guarantee_or_grow_memory_are_refused(text, expected):
    with pytest.raises(PolicyError) as error:
        parse_policy(MINIMAL + text, "p.toml")
    assert expected in str(error.value)


SECTIONS = """version = "v"
[dedupe]
window = "7d"
[quiet_hours]
start = "21:00"
end = "09:00"
[arbitration]
window = "5m"
[[caps]]
name = "a"
limit = 1
window = "1d"
[[caps]]
name = "b"
limit = 2
window = "2d"
[categories.service]
consent = "opt_out"
[categories.promo]
consent = "opt_in"
[limits]
context_events = 5
"""


@pytest.mark.parametrize(
    "old,new,line",
    [
        ('window = "7d"', 'window = "x"', 3),
        ('start = "21:00"', 'start = "x"', 5),
        ('window = "5m"', 'window = "x"', 8),  # not the dedupe window's line
        ('window = "1d"', 'window = "x"', 12),
        ('window = "2d"', 'window = "x"', 16),  # the second cap's, not the first's
        ('consent = "opt_in"', 'consent = "x"', 20),  # promo's, not service's
        ("context_events = 5", "context_events = 500", 22),
    ],
)
def test_an_error_names_the_line_of_its_own_section(old, new, line):
    with pytest.raises(PolicyError) as error:
        parse_policy(SECTIONS.replace(old, new), "p.toml")
    assert str(error.value).startswith(f"p.toml:{line}:")


def test_the_version_carries_a_hash_of_what_the_policy_says():
    plain = parse_policy(MINIMAL)
    assert plain.version.startswith("v1+") and len(plain.version) == len("v1+") + 10
    same_meaning = parse_policy("# a comment\n" + MINIMAL + "\n")
    other_meaning = parse_policy(MINIMAL + '[dedupe]\nwindow = "3d"\n')
    assert same_meaning.version == plain.version
    assert other_meaning.version != plain.version  # same human version, different content
