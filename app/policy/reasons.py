"""Reason codes on decision records, and the bounded form a metric label may carry."""

from __future__ import annotations

# Reasons that name a message (or an upstream's free word): as labels they would make one time
# series per message.
NAMING_A_MESSAGE = ("duplicate_of:", "fallback_of:", "no_channel:")


def reason_label(reason: str) -> str:
    """The reason without the message it names, e.g. "duplicate_of:m1" -> "duplicate_of"."""
    for prefix in NAMING_A_MESSAGE:
        if reason.startswith(prefix):
            return prefix[:-1]
    return reason
