"""The `tact` command (also `python -m app`)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from app.config import Settings
from app.policy.policy_file import PolicyError, load_policy


def _settings(**flags: Any) -> Settings:
    try:
        return Settings.from_env(**flags)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _policy_or_exit(path: Path | None) -> Any:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tact", message="tact %(version)s")
def main() -> None:
    """Tact: contact policy and journeys, decided on Kafka."""
    from app.policy import StaleBuildError, refuse_stale_builds

    try:
        refuse_stale_builds()
    except StaleBuildError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--broker", help="Kafka bootstrap URL, e.g. kafka://localhost:9092 [TACT_BROKER]")
@click.option("--broker-kind", type=click.Choice(["kafka", "tansu"]), help="[TACT_BROKER_KIND]")
@click.option("--app-id", help="Consumer group and table prefix [TACT_APP_ID]")
@click.option("--topic-prefix", help="Prefix for every topic name [TACT_TOPIC_PREFIX]")
@click.option("--partitions", type=int, help="Partitions of every Tact topic [TACT_PARTITIONS]")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="RocksDB directory [TACT_DATA_DIR]"
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Policy TOML [TACT_POLICY_PATH]",
)
@click.option(
    "--metrics-port", type=int, help="Prometheus /metrics port, 0 for none [TACT_METRICS_PORT]"
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warn", "error"]))
@click.option("--log-format", type=click.Choice(["text", "json"]), help="[TACT_LOG_FORMAT]")
@click.option(
    "--reset-state",
    is_flag=True,
    default=None,
    help="An input log ends before what this worker's state has read (the broker started "
    "over): keep the customers' state and read the new log from its start [TACT_RESET_STATE]",
)
def worker(**flags: Any) -> None:
    """Run a worker: consume inputs, decide, publish outbound messages and decisions."""
    from app.kafka_security import client_options
    from app.stream.web import check_view_settings
    from app.worker import KafkaUnreachable, check_kafka, run_worker

    settings = _settings(**flags)
    _policy_or_exit(settings.policy_path)
    try:
        check_view_settings(settings.view_host, settings.view_port, settings.bearer_token)
        client_options(settings)  # the TLS files load
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        check_kafka(settings, settings.connect_timeout_s)
    except KafkaUnreachable as exc:
        raise click.ClickException(str(exc)) from exc
    run_worker(settings)


@main.command()
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.File("r"),
    help='JSON Lines: {"kind": "profile"|"event"|"candidate", ...}',
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Policy TOML (default: shipped)",
)
@click.option(
    "--out", required=True, type=click.File("w", lazy=False), help="Decisions, as JSON Lines"
)
@click.option("--state-out", type=click.Path(path_type=Path), help="Final customer states, as JSON")
@click.option(
    "--dead-letters", type=click.File("w", lazy=False), help="Records that could not be used"
)
@click.option(
    "--journeys-out",
    type=click.File("w", lazy=False),
    help="Journey transitions (entered, steps, exits, goals), as JSON Lines",
)
@click.option(
    "--signals-out",
    type=click.File("w", lazy=False),
    help="Signals (a customer's channel switches), as JSON Lines",
)
@click.option(
    "--until", help="Advance the clock to this ISO-8601 time at the end (default: last record)"
)
def simulate(
    events_path: Any,
    policy_path: Path | None,
    out: Any,
    state_out: Path | None,
    dead_letters: Any,
    journeys_out: Any,
    signals_out: Any,
    until: str | None,
) -> None:
    """Replay recorded traffic through a policy, offline, with the worker's own decision code."""
    from app.simulate import run

    policy = _policy_or_exit(policy_path)
    result = run(
        events_path,
        policy,
        out,
        until=until,
        state_out=state_out,
        dead_letters_out=dead_letters or sys.stderr,
        journeys_out=journeys_out,
        signals_out=signals_out,
    )
    counts: dict[str, int] = {}
    for decision in result.decisions:
        counts[decision.outcome.value] = counts.get(decision.outcome.value, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no decisions"
    click.echo(
        f"{len(result.decisions)} decisions ({summary}); {len(result.dead_letters)} dead letters",
        err=True,
    )
    if result.dead_letters and not result.decisions and not result.states:
        raise click.ClickException("every record was a dead letter: nothing was decided")


@main.command()
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON Lines, as simulate reads them (e.g. from tact export)",
)
@click.option(
    "--policy",
    "policy_paths",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A policy TOML; give it twice or more (the first is the baseline)",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Report folder"
)
def whatif(events_path: Path, policy_paths: tuple[Path, ...], out: Path) -> None:
    """Replay the same inputs through several policies and report what would change."""
    from app.whatif_cli import run_whatif_command

    if len(policy_paths) < 2:
        raise click.UsageError("give --policy at least twice: the current one and a candidate")
    for path in policy_paths:
        _policy_or_exit(path)
    if not run_whatif_command(events_path, list(policy_paths), out):
        raise click.ClickException("an invariant does not hold: see the report")


@main.command()
@click.option("--customers", type=int, default=100_000, show_default=True)
@click.option("--records", type=int, default=1_000_000, show_default=True, help="Profiles included")
@click.option("--start", default="2026-11-02T00:00:00Z", show_default=True, help="The day's start")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", required=True, type=click.File("w", lazy=False), help="JSON Lines file")
def sample(customers: int, records: int, start: str, seed: int, out: Any) -> None:
    """Write a generated day of traffic as JSON Lines (for simulate, whatif and produce)."""
    from app.codecs.records import RecordError, to_millis
    from app.traffic import recorded_day

    try:
        start_ms = to_millis(start, "--start")
    except RecordError as exc:
        raise click.BadParameter(str(exc)) from exc
    for record in recorded_day(customers, records, start_ms, seed):
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


@main.group()
def policy() -> None:
    """Work with policy files."""


@policy.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def policy_check(path: Path | None) -> None:
    """Validate a policy file (default: the shipped one) and show what it says."""
    from app.policy.describe import describe_policy

    click.echo(describe_policy(_policy_or_exit(path)))


@policy.command("show")
def policy_show() -> None:
    """Print the shipped default policy file, to start a policy of your own from."""
    from importlib import resources

    click.echo(resources.files("app.policy").joinpath("default_policy.toml").read_text(), nl=False)


@main.command()
@click.option("--file", "path", required=True, type=click.File("r"), help="JSON Lines inputs")
@click.option("--broker", help="[TACT_BROKER]")
@click.option("--topic-prefix", help="[TACT_TOPIC_PREFIX]")
def produce(path: Any, **flags: Any) -> None:
    """Publish JSON Lines inputs to Tact's topics, Avro-encoded as upstream systems would."""
    from app.client import Publisher, encode_input
    from app.codecs.registry import schemas_for
    from app.kafka_security import client_options

    settings = _settings(**flags)
    schemas = schemas_for(settings)
    records = [
        encode_input(json.loads(line), settings.topics, schemas) for line in path if line.strip()
    ]

    async def go() -> int:
        security = client_options(settings)
        async with Publisher(
            settings.bootstrap_servers,
            security=security,
            compression_type=settings.kafka_compression_type,
        ) as publisher:
            return await publisher.publish(records)

    click.echo(f"published {asyncio.run(go())} records", err=True)


@main.command()
@click.option("--since", required=True, help="ISO-8601 time: records from this time on")
@click.option("--until", help="ISO-8601 time: records before this one (default: now)")
@click.option(
    "--topics",
    default="profiles,events,candidates",
    show_default=True,
    help="Which input topics, comma-separated",
)
@click.option("--out", type=click.File("w", lazy=False), default="-", help="JSON Lines (stdout)")
@click.option("--broker", help="[TACT_BROKER]")
@click.option("--topic-prefix", help="[TACT_TOPIC_PREFIX]")
def export(since: str, until: str | None, topics: str, out: Any, **flags: Any) -> None:
    """Read the input topics of a time range into the JSON Lines that simulate and whatif read."""
    from aiokafka.errors import KafkaError

    from app.clock import now_ms
    from app.codecs.records import RecordError, to_millis
    from app.export import KINDS
    from app.export import export as export_range

    try:
        since_ms = to_millis(since, "--since")
        until_ms = to_millis(until, "--until") if until else now_ms()
    except RecordError as exc:
        raise click.BadParameter(str(exc)) from exc
    chosen = [t.strip() for t in topics.split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(KINDS))
    if unknown or not chosen:
        raise click.BadParameter(f"{unknown or topics!r}: use some of {', '.join(KINDS)}")
    settings = _settings(**flags)

    def write(record: dict[str, Any]) -> None:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    try:
        counts = asyncio.run(export_range(settings, since_ms, until_ms, chosen, write))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaError as exc:
        where = settings.bootstrap_servers
        raise click.ClickException(f"cannot read from Kafka at {where}: {exc}") from exc
    summary = ", ".join(f"{n} {kind}s" for kind, n in sorted(counts.items())) or "no records"
    click.echo(f"exported {summary}", err=True)


@main.command()
@click.argument("customer_id")
@click.option("--message", "message_id", help="Only this message: the rules that decided it")
@click.option("--json", "as_json", is_flag=True, help="One JSON value, for tools")
@click.option(
    "--view",
    "view_url",
    help="A worker's view, e.g. http://127.0.0.1:6066 (default: TACT_VIEW_HOST and _PORT)",
)
@click.option("--broker", help="[TACT_BROKER]")
@click.option("--topic-prefix", help="[TACT_TOPIC_PREFIX]")
def explain(
    customer_id: str, message_id: str | None, as_json: bool, view_url: str | None, **flags: Any
) -> None:
    """Why did this customer get that? Past decisions, caps now, what is scheduled."""
    from aiokafka.errors import KafkaError

    from app.explain import NoWorker, live_view, past_decisions, render, story

    settings = _settings(**flags)
    url = view_url or settings.view_url

    async def gather() -> dict[str, Any]:
        view = await live_view(settings, url, customer_id)
        return story(customer_id, view, await past_decisions(settings, customer_id), message_id)

    try:
        told = asyncio.run(gather())
    except (NoWorker, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaError as exc:
        where = settings.bootstrap_servers
        raise click.ClickException(f"cannot read from Kafka at {where}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(told, ensure_ascii=False))
    else:
        render(told, click.echo)


@main.command("tail")
@click.argument("topic")
@click.option("--customer", help="Only this customer's records (and partition)")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records")
@click.option("--broker", help="[TACT_BROKER]")
@click.option("--topic-prefix", help="[TACT_TOPIC_PREFIX]")
def tail_topic(topic: str, customer: str | None, follow: bool, **flags: Any) -> None:
    """Print a Tact topic decoded, one JSON line per record (decisions, outbound.sms, journeys,
    signals, customer.events ...)."""
    from aiokafka.errors import KafkaError

    from app.tail import tail

    settings = _settings(**flags)
    try:
        printed = asyncio.run(tail(settings, topic, customer, follow, click.echo))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaError as exc:
        where = settings.bootstrap_servers
        raise click.ClickException(f"cannot read from Kafka at {where}: {exc}") from exc
    except KeyboardInterrupt:
        return
    click.echo(f"{printed} records", err=True)


@main.command()
@click.option("--customers", type=int, default=500, show_default=True)
@click.option("--candidates", type=int, default=5000, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave broker and worker up to explore /metrics")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default="tact-demo.png",
    show_default=True,
    help="The PNG of messages per customer in a day, with and without Tact",
)
def demo(customers: int, candidates: int, keep_running: bool, chart: Path) -> None:
    """Embedded broker, a worker process and sample traffic: Tact end to end in a minute."""
    from rich.console import Console

    from app.demo import Demo

    Demo(Console(), customers, candidates, chart).run(keep_running)


@main.command()
@click.option("--customers", type=int, default=10_000, show_default=True)
@click.option(
    "--events",
    type=int,
    default=100_000,
    show_default=True,
    help="Candidates and events to pre-load (about 4 in 5 are candidates)",
)
@click.option(
    "--latency-rate",
    type=float,
    default=None,
    help="Candidates/s for the latency run [default: half the engine's peak]",
)
@click.option(
    "--burst",
    type=int,
    default=100_000,
    show_default=True,
    help="Candidates for one customer at once, during a latency run (0: no burst)",
)
@click.option(
    "--campaign",
    type=int,
    default=100_000,
    show_default=True,
    help="Promo candidates published at once while codes go to the urgent topic (0: none)",
)
@click.option(
    "--load-seconds",
    type=float,
    default=10.0,
    show_default=True,
    help="How long each latency run produces its load",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="More than 1: also run that many workers in one group, and time rebalances",
)
@click.option(
    "--journey-customers",
    type=int,
    default=100_000,
    show_default=True,
    help="Customers in a journey of 10 timed steps, for the release lag (0: no journey load)",
)
@click.option(
    "--journey-rate",
    type=float,
    default=2000,
    show_default=True,
    help="Journey steps falling due per second, all customers together",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on the last line")
def bench(
    customers: int,
    events: int,
    latency_rate: float | None,
    burst: int,
    campaign: int,
    load_seconds: float,
    workers: int,
    journey_customers: int,
    journey_rate: float,
    as_json: bool,
) -> None:
    """Measure the engine against a raw aiokafka pass-through, on the embedded broker."""
    from app.bench.journeys import JourneyLoad
    from app.bench.report import print_table, result_json
    from app.bench.run import Bench

    say = lambda line: click.echo(line, err=True)  # noqa: E731
    journeys = JourneyLoad(journey_customers, journey_rate)
    result = Bench(
        customers, events, say, latency_rate, burst, journeys, campaign, load_seconds, workers
    ).run()
    print_table(result)
    if as_json:
        click.echo(result_json(result))


@main.command()
@click.option("--port", type=int, default=9092, show_default=True)
def broker(port: int) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) in the foreground."""
    import signal

    from app.broker import EmbeddedBroker

    # SIGTERM (docker stop, kill, a supervisor) stops the broker as Ctrl-C does: the with block
    # is left and the broker process stopped, not orphaned with the port.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with EmbeddedBroker(port) as running:
        click.echo(f"broker listening on {running.bootstrap}; Ctrl-C stops it", err=True)
        try:
            while running.process and running.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
