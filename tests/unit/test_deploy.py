"""The dashboards and alerts SREs get must only name metrics the worker really exports."""

import re
from pathlib import Path

from prometheus_client import generate_latest

from app.metrics import Metrics
from app.stream.cache import StateCache

ROOT = Path(__file__).resolve().parents[2]
WATCHED = [ROOT / "deploy/alerts.yml", ROOT / "deploy/grafana/dashboards/tact.json"]


def exported_names() -> set[str]:
    metrics = Metrics()
    metrics.records_in.labels(topic="t").inc()
    metrics.decisions.labels(outcome="sent", reason="", channel="email", category="promo").inc()
    metrics.outbound.labels(channel="email").inc()
    metrics.dead_letters.labels(topic="t", kind="decode").inc()
    metrics.deferred_backlog.labels(partition="0").set(1)
    metrics.recovered.labels(kind="decision").inc()
    metrics.journey_transitions.labels(journey="j", step="s", transition="entered").inc()
    metrics.journey_goal_value.labels(journey="j").inc()
    metrics.journey_instances.labels("j", "0").set(1)
    metrics.contact_cost.labels(channel="sms", category="promo", journey="").inc(0.04)
    metrics.channel_switches.labels(from_channel="messenger", to_channel="call").inc()
    metrics.feedback_score.labels(kind="nps", channel="sms", journey="").observe(3)
    metrics.watch_state_cache(StateCache(1))
    metrics.watch_input_lag(lambda: [("customer.events", 0, 3, 1.5)])
    text = generate_latest(metrics.registry).decode()
    samples = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")
    }
    return samples | {family.name for family in metrics.registry.collect()}


def test_alerts_and_dashboard_name_only_exported_metrics() -> None:
    exported = exported_names()
    for path in WATCHED:
        named = set(re.findall(r"\b(?:tact|python_gc|process)_[a-z_]+", path.read_text()))
        assert any(name.startswith("tact_") for name in named), f"{path} names no Tact metric"
        assert named <= exported, f"{path} names metrics Tact does not export: {named - exported}"


def test_the_worker_exports_its_process_and_cycle_collector_metrics() -> None:
    exported = exported_names()
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= exported
    assert "python_gc_collections_total" in exported


def test_the_k8s_manifest_does_not_carry_a_copy_of_the_policy() -> None:
    manifest = (ROOT / "deploy/k8s/tact.yaml").read_text()
    assert "kind: ConfigMap" not in manifest and "[[caps]]" not in manifest
    assert "configMap: {name: tact-policy}" in manifest and "tact policy show" in manifest


def test_probes_and_discovery_use_the_worker_health_and_find_every_worker() -> None:
    manifest = (ROOT / "deploy/k8s/tact.yaml").read_text()
    assert "livenessProbe:\n            httpGet: {path: /health/live, port: metrics}" in manifest
    assert "readinessProbe:\n            httpGet: {path: /health/ready, port: metrics}" in manifest
    assert "TACT_VIEW_TOKEN_FILE" in manifest  # its view listens on the pod network
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "/health/ready" in compose and "tact-data:/var/lib/tact" not in compose
    assert "dns_sd_configs" in (ROOT / "deploy/prometheus.yml").read_text()
    assert "kubernetes_sd_configs" in (ROOT / "deploy/k8s/prometheus.yml").read_text()
