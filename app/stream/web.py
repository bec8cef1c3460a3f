"""The customer view over HTTP, on Faust's web server: GET /customers/{customer_id}.

Faust's table routing answers it: a request to any worker of the group is forwarded (headers
and all) to the worker that owns the customer's partition, which reads the state and answers.
The view holds personal data: with a token configured every request needs
`Authorization: Bearer <token>` (401 otherwise), and nothing of the request is logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from app.client import partition_of
from app.explain_view import customer_view
from app.stream.processor import NotReady

if TYPE_CHECKING:
    from app.stream.app import TactApp

Handler = Callable[..., Awaitable[Any]]


def faust_web_settings(host: str, port: int, url: str) -> dict[str, Any]:
    """Faust's web server for the view alone: none of Faust's own pages (its /table pages would
    show customer data to anyone)."""
    if not port:
        return {"web_enabled": False}
    return {
        "web_enabled": True,
        "web_bind": host,
        "web_port": port,
        "canonical_url": url,
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
    }


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_view_settings(host: str, port: int, token: str) -> None:
    """The view never listens beyond this machine without a token."""
    if port and host not in LOOPBACK and not token:
        raise ValueError(
            f"TACT_VIEW_HOST={host!r} listens beyond this machine: set TACT_VIEW_TOKEN or "
            "TACT_VIEW_TOKEN_FILE (the customer view holds personal data), or TACT_VIEW_PORT=0"
        )


def bearer_required(token: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            given = request.headers.get("Authorization", "")
            if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return view.json({"error": "a bearer token is required"}, status=401)
            return await handler(view, request, *args, **kwargs)

        return checked

    return decorate


def wire_view(app: TactApp, table: Any) -> None:
    settings = app.tact_settings
    if not settings.view_port:
        return

    @app.page("/customers/{customer_id}")
    @bearer_required(settings.bearer_token)
    @app.table_route(table=table, match_info="customer_id")
    async def customer(view: Any, request: Any, customer_id: str) -> Any:
        partition = partition_of(customer_id, settings.partitions)
        try:
            state = app.processor.state_of(partition, customer_id)
        except NotReady:
            return view.json({"error": f"partition {partition} is not ready"}, status=503)
        if state is None:
            return view.json({"error": "no such customer", "customer_id": customer_id}, status=404)
        now = app.processor.clock()
        return view.json(customer_view(state, app.processor.parts.policy, now))
