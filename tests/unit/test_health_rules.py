"""Which providers are probed and how, and the arithmetic of the performance block."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from parrotrouter.accounting.usage import Attempt, UsageRecord
from parrotrouter.catalog import Deployment, HealthCheck, ProviderSpec
from parrotrouter.config.loader import read_config_file
from parrotrouter.errors import ConfigError, FailureKind
from parrotrouter.observe.performance import BINS, EDGES, bin_of, fold, parse_fields, percentile, performance_block
from parrotrouter.observe.provider_health import ProviderHealth, Verdict, probe_for, self_hosted
from parrotrouter.providers.http import HttpProvider
from parrotrouter.providers.openai_compat import OpenAIAdapter
from parrotrouter.routing.health import BreakerSettings, Health
from parrotrouter.settings import Secret


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "http://[::1]:1234/v1",
                                 "http://10.0.0.5:8000/v1", "http://192.168.1.20/v1", "http://vllm:8000/v1",
                                 "http://gpu-box.lan/v1", "http://llm.internal/v1", "http://169.254.1.1/v1"])
def test_self_hosted_endpoints(url: str) -> None:
    assert self_hosted(url)


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "https://api.groq.com/openai/v1",
                                 "https://8.8.8.8/v1", "not a url"])
def test_cloud_endpoints(url: str) -> None:
    assert not self_hosted(url)


def spec(base_url: str | None, type: str = "openai", **check: object) -> ProviderSpec:
    return ProviderSpec(name="p", type=type, display_name="p", base_url=base_url, api_key=Secret("sk-secret"),
                        headers={"X-Team": "a"}, health_check=HealthCheck(**check))  # type: ignore[arg-type]


def test_probe_defaults() -> None:
    local = probe_for(spec("http://127.0.0.1:8000/v1"), 15, 2)
    assert local is not None and local.url == "http://127.0.0.1:8000/v1/models" and local.lenient
    assert local.headers == {"X-Team": "a", "Authorization": "Bearer sk-secret"}
    assert (local.interval, local.timeout) == (15, 2)
    assert probe_for(spec("https://api.openai.com/v1"), 15, 2) is None  # paid cloud: off unless asked
    assert probe_for(spec("http://127.0.0.1:8000/v1"), 0, 2) is None  # probes switched off
    assert probe_for(spec(None, type="llamacpp"), 15, 2) is None  # in-process: healthy when loaded


def test_probe_as_configured() -> None:
    cloud = probe_for(spec("https://api.anthropic.com/v1", type="anthropic", probe=True, interval=60, timeout=1),
                      15, 2)
    assert cloud is not None and cloud.interval == 60 and cloud.timeout == 1
    assert cloud.headers["x-api-key"] == "sk-secret" and "anthropic-version" in cloud.headers
    custom = probe_for(spec("http://127.0.0.1:8000/v1", url="http://127.0.0.1:8000/health"), 15, 2)
    assert custom is not None and custom.url == "http://127.0.0.1:8000/health" and not custom.lenient
    assert probe_for(spec("http://127.0.0.1:8000/v1", probe=False), 15, 2) is None
    # Same name, other URL: another key (instances sharing Redis share only equal probes).
    other = probe_for(spec("http://127.0.0.2:8000/v1"), 15, 2)
    local = probe_for(spec("http://127.0.0.1:8000/v1"), 15, 2)
    assert other is not None and local is not None and other.key != local.key


def test_credentials_go_only_to_the_providers_own_origin() -> None:
    # A cloud provider whose health URL is private: probing stays off (decided by base_url) ...
    assert probe_for(spec("https://api.openai.com/v1", url="http://10.0.0.5:9000/healthz"), 15, 2) is None
    # ... and when asked for, that URL gets neither the key nor the provider's headers.
    elsewhere = probe_for(spec("https://api.openai.com/v1", probe=True, url="http://10.0.0.5:9000/healthz"), 15, 2)
    assert elsewhere is not None and elsewhere.headers == {}
    for url in ("http://127.0.0.1:9000/health", "https://127.0.0.1:8000/health", "http://localhost:8000/health"):
        other = probe_for(spec("http://127.0.0.1:8000/v1", url=url), 15, 2)
        assert other is not None and other.headers == {}, url
    same = probe_for(spec("https://api.anthropic.com/v1", type="anthropic", probe=True,
                          url="https://API.anthropic.com:443/health"), 15, 2)
    assert same is not None and same.headers["x-api-key"] == "sk-secret" and same.headers["X-Team"] == "a"
    local = probe_for(spec("http://127.0.0.1:8000/v1"), 15, 2)
    assert local is not None and "sk-secret" not in repr(local)


def test_health_check_config_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("providers:\n  - name: vllm\n    type: openai\n    base_url: http://10.0.0.5/v1\n"
                    "    health_check: {url: ftp://x, path: models, interval: 0, timeout: 100, extra: 1}\n")
    with pytest.raises(ConfigError) as err:
        read_config_file(str(path))
    text = str(err.value.problems)
    for field in ("url", "path", "interval", "timeout", "extra"):
        assert f"providers[0].health_check.{field}" in text


def test_percentiles_come_from_the_histogram_within_a_bin() -> None:
    bins = [0] * BINS
    for ms in [10.0] * 50 + [1000.0] * 50:
        bins[bin_of(ms)] += 1
    p50, p95 = percentile(bins, 0.5), percentile(bins, 0.95)
    assert p50 is not None and 10 / 1.25 <= p50 <= 10 * 1.25
    assert p95 is not None and 1000 / 1.25 <= p95 <= 1000 * 1.25
    assert percentile([0] * BINS, 0.5) is None
    assert bin_of(10 ** 9) == len(EDGES) == BINS - 1  # beyond the last edge: the last bin


def test_fold_counts_models_and_providers() -> None:
    def record(status: int, latency: float, ttft: float | None, tokens: int, attempts: list[Attempt]) -> UsageRecord:
        return UsageRecord(id="r", endpoint="chat", requested_model="m1", served_model="m1", status=status,
                           latency_ms=latency, ttft_ms=ttft, completion_tokens=tokens, attempts=attempts,
                           created_at=1000.0)

    ok = record(200, 500.0, 100.0, 40, [Attempt("p1", "p1/m", 200)])
    failed = record(502, 50.0, None, 0, [Attempt("p1", "p1/m", 502, "server_error")])
    client_error = record(400, 5.0, None, 0, [Attempt("p1", "p1/m", 400, "bad_request")])
    cancelled = record(499, 5.0, None, 0, [])
    buckets = fold([ok, failed, client_error, cancelled])
    assert list(buckets) == [1000]
    stats = buckets[1000]
    model, provider = stats[("m", "m1")], stats[("p", "p1")]
    assert (model.requests, model.succeeded, provider.requests, provider.succeeded) == (2, 1, 2, 1)
    block = performance_block(model, 300)
    assert block is not None
    assert block["success_rate"] == 0.5 and block["requests"] == 2
    assert block["tokens_per_second"] == 100.0  # 40 tokens in the 400 ms after the first one
    assert performance_block(None, 300) is None
    # What Redis holds reads back as the same figures.
    shared: dict[str, int] = {}
    for key, found in stats.items():
        shared.update(found.fields(key))
    again: dict[tuple[str, str], object] = {}
    parse_fields(shared, again)  # type: ignore[arg-type]
    assert performance_block(again[("m", "m1")], 300) == block  # type: ignore[arg-type]


def test_an_open_breaker_makes_a_deployment_and_then_its_provider_unhealthy() -> None:
    local = spec("http://127.0.0.1:8000/v1")
    breakers = Health(BreakerSettings(failure_threshold=1, cooldown=60))
    provider = HttpProvider(local, OpenAIAdapter(local), supports_completions=True)
    health = ProviderHealth({"p": local}, {"p": provider}, breakers, interval=15, timeout=2,
                            deployments=[Deployment("p", "a"), Deployment("p", "b")])
    breakers.started("p/a")
    breakers.finished("p/a", True, 10.0, None)
    breakers.started("p/b")
    breakers.finished("p/b", False, 10.0, None, FailureKind.SERVER_ERROR)
    assert health.deployment("p", "p/a").healthy
    broken = health.deployment("p", "p/b")
    assert not broken.healthy and "circuit breaker open after" in broken.message and "retried in 60 s" in broken.message
    assert health.provider("p").healthy  # one deployment of two still works
    breakers.started("p/a")
    breakers.finished("p/a", False, 10.0, None, FailureKind.TIMEOUT)
    verdict = health.provider("p")
    assert not verdict.healthy and "circuit breakers open" in verdict.message
    assert health.report()["p"]["open_circuits"] == 2
    assert "127.0.0.1" not in verdict.message and "sk-secret" not in verdict.message


def test_one_failing_model_leaves_its_provider_and_other_models_healthy() -> None:
    """A fresh process whose only traffic went to one broken model (404: removed upstream)."""
    local = spec("http://127.0.0.1:8000/v1")
    breakers = Health(BreakerSettings(failure_threshold=5, cooldown=30))
    provider = HttpProvider(local, OpenAIAdapter(local), supports_completions=True)
    health = ProviderHealth({"p": local}, {"p": provider}, breakers, interval=15, timeout=2,
                            deployments=[Deployment("p", "bad"), Deployment("p", "mini"), Deployment("p", "bad")])
    for _ in range(5):
        breakers.started("p/bad")
        breakers.finished("p/bad", False, 10.0, None, FailureKind.NOT_FOUND)
    breakers.state("p/gone").open_until = breakers.states["p/bad"].open_until  # from Redis, not in the catalog
    assert not health.deployment("p", "p/bad").healthy
    assert health.deployment("p", "p/mini") == health.provider("p") == Verdict(True, "available")
    assert health.report()["p"]["open_circuits"] == 1


def test_breaker_states_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment's state is made on its first request, and model names resolved on demand make
    deployments (`anthropic/claude-3-5-sonnet-<anything>`): beyond the bound, idle closed states of
    the least used deployments go; an open breaker or a request in flight stays."""
    from parrotrouter.routing import health as health_module

    monkeypatch.setattr(health_module, "MAX_STATES", 100)
    h = health_module.Health()
    for _ in range(50):  # a deployment in real use
        h.started("fake/real")
        h.finished("fake/real", True, 10.0, None)
    h.started("fake/busy")
    h.states["fake/open"] = health_module.DeploymentState(open_until=time.monotonic() + 60)
    for i in range(1_000):
        h.started(f"anthropic/claude-3-5-sonnet-x{i}")
        h.finished(f"anthropic/claude-3-5-sonnet-x{i}", False, 1.0, None)
    assert len(h.states) <= 100
    assert {"fake/real", "fake/busy", "fake/open"} <= set(h.states)
    assert h.states["fake/real"].requests == 50 and h.is_open("fake/open")
