"""The channel rules of a policy file ([channels], [[matrix]], [engagement], [feedback],
[signals]), checked where they are read (see policy_file.py and channel_rules.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.policy.channel_rules import ENGAGEMENT_WEIGHTS, ChannelRules, MatrixRow
from app.policy.journey_file import NAME, JourneyReader
from app.policy.model import CHANNELS, Urgency

CHANNEL_KEYS = (
    "honour_preferred_channel",
    "assume_reachable",
    "channel_choice",
    "prefer_cheaper",
    "fallback",
    "fallback_keep",
    *CHANNELS,  # [channels.sms]: cost, fallback_after
)
CHOICES = ("matrix", "engagement")
DEFAULTS = ChannelRules()


class ChannelReader(JourneyReader):  # one line of readers: the compiled core has no mixins
    def channel_rules(self, doc: Mapping[str, Any]) -> ChannelRules:
        channels = self.table(doc, "channels", CHANNEL_KEYS)
        engagement = self.table(doc, "engagement", ("half_life", "weights", "send_time_horizon"))
        feedback = self.table(
            doc,
            "feedback",
            ("detractor_nps", "detractor_csat", "detractor_for", "complaint_opts_out", "caps"),
        )
        signals = self.table(doc, "signals", ("switch_window", "switch_penalty"))
        per_channel = {c: self.per_channel(channels, c) for c in CHANNELS if c in channels}
        return ChannelRules(
            choice=self.one_of(
                channels.get("channel_choice", "matrix"), "channels.channel_choice", CHOICES
            ),
            prefer_cheaper=self.boolean(
                channels.get("prefer_cheaper", False), "channels.prefer_cheaper"
            ),
            matrix=self.matrix(doc.get("matrix", [])),
            cost={c: t["cost"] for c, t in per_channel.items() if "cost" in t},
            fallback=self.boolean(channels.get("fallback", True), "channels.fallback"),
            fallback_after={
                c: t["fallback_after"] for c, t in per_channel.items() if "fallback_after" in t
            },
            fallback_keep_ms=self.bounded_duration(
                channels.get("fallback_keep", "3d"),
                "channels.fallback_keep",
                "1m",
                "30d",
                "a send stays open to a fallback this long, and is remembered until then",
            ),
            half_life_ms=self.bounded_duration(
                engagement.get("half_life", "30d"),
                "engagement.half_life",
                "1h",
                "365d",
                "an engagement score halves over this span",
            ),
            weights=self.weights(engagement.get("weights", {})),
            send_time_horizon_ms=self.bounded_duration(
                engagement.get("send_time_horizon", "24h"),
                "engagement.send_time_horizon",
                "1h",
                "7d",
                'send_time = "engagement" holds a candidate for the best hour within this span',
            ),
            switch_window_ms=self.bounded_duration(
                signals.get("switch_window", "10m"),
                "signals.switch_window",
                "1s",
                "1d",
                "two inbound contacts this close on two channels are a channel switch",
            ),
            switch_penalty=self.number(
                signals.get("switch_penalty", 0.0), "signals.switch_penalty", 0, 100
            ),
            detractor_nps=self.number(
                feedback.get("detractor_nps", DEFAULTS.detractor_nps),
                "feedback.detractor_nps",
                0,
                10,
            ),
            detractor_csat=self.number(
                feedback.get("detractor_csat", DEFAULTS.detractor_csat),
                "feedback.detractor_csat",
                1,
                5,
            ),
            detractor_for_ms=self.bounded_duration(
                feedback.get("detractor_for", "30d"),
                "feedback.detractor_for",
                "1h",
                "365d",
                "a detractor's stricter caps hold this long after the score",
            ),
            complaint_opts_out=self.boolean(
                feedback.get("complaint_opts_out", True), "feedback.complaint_opts_out"
            ),
        )

    def per_channel(self, channels: Mapping[str, Any], channel: str) -> dict[str, Any]:
        path = f"channels.{channel}"
        table = self.table(channels, path, ("cost", "fallback_after"))
        read: dict[str, Any] = {}
        if "cost" in table:
            read["cost"] = self.number(table["cost"], f"{path}.cost", 0, 1_000_000)
        if "fallback_after" in table:
            read["fallback_after"] = self.bounded_duration(
                table["fallback_after"],
                f"{path}.fallback_after",
                "1s",
                "7d",
                "without a delivered event by then the message goes out on the next channel",
            )
        return read

    def matrix(self, raw: Any) -> tuple[MatrixRow, ...]:
        if not isinstance(raw, list):
            raise self.fail("matrix", "must be an array of tables: write each row as [[matrix]]")
        rows = []
        for i, item in enumerate(raw):
            path = f"matrix[{i}]"
            if not isinstance(item, dict):
                raise self.fail(path, "must be a table written as [[matrix]]")
            self.check_keys(item, path, ("purpose", "urgency", "segment", "channels"))
            purpose = item.get("purpose")
            if not isinstance(purpose, str) or not NAME.fullmatch(purpose):
                raise self.fail(f"{path}.purpose", "missing or not lower_snake_case")
            channels = self.choices(item.get("channels", []), f"{path}.channels", CHANNELS)
            if not channels:
                raise self.fail(f"{path}.channels", "list at least one channel")
            urgency = item.get("urgency")
            segment = item.get("segment")
            if segment is not None and not isinstance(segment, str):
                raise self.fail(f"{path}.segment", "must be a segment's name")
            rows.append(
                MatrixRow(
                    purpose,
                    tuple(channels),
                    None
                    if urgency is None
                    else Urgency(
                        self.one_of(urgency, f"{path}.urgency", tuple(u.value for u in Urgency))
                    ),
                    segment,
                )
            )
        return tuple(rows)

    def weights(self, raw: Any) -> dict[str, float]:
        if not isinstance(raw, dict):
            raise self.fail("engagement.weights", "must be a table of event type = number")
        self.check_keys(raw, "engagement.weights", tuple(ENGAGEMENT_WEIGHTS))
        read = {k: self.number(v, f"engagement.weights.{k}", -100, 100) for k, v in raw.items()}
        return {**ENGAGEMENT_WEIGHTS, **read}
