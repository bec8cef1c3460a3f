"""Waiting for a condition, with a deadline: for the demo, the bench and the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Ask `condition` every `every` seconds until it returns something true, and return that;
    TimeoutError naming `what` after `timeout` seconds."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(every),
        retry=retry_if_result(lambda result: not result),
    )
    try:
        return retrying(condition)
    except RetryError:
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None
