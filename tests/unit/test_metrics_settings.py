"""The metrics settings: the token and the trusted networks are checked where they are read."""

from __future__ import annotations

import ipaddress

import pytest

from parrotrouter.errors import ConfigError
from parrotrouter.settings import load_settings


def test_metrics_defaults() -> None:
    settings = load_settings(env={})
    assert settings.metrics is True and settings.metrics_token is None and settings.metrics_public_networks == ()


def test_networks_parsed_from_the_environment_and_the_file() -> None:
    env = load_settings(env={"PARROTROUTER_METRICS_PUBLIC_NETWORKS": "10.0.0.0/8, 127.0.0.1,::1"})
    assert env.metrics_public_networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"),
                                           ipaddress.ip_network("::1/128"))
    file = load_settings(env={}, file={"metrics_public_networks": ["192.168.1.7/24"]})
    assert file.metrics_public_networks == (ipaddress.ip_network("192.168.1.0/24"),)


def test_ipv4_mapped_peer_counts_as_its_ipv4_address() -> None:
    from parrotrouter.api.metrics.routes import trusted

    networks = (ipaddress.ip_network("10.0.0.0/8"),)
    assert trusted(ipaddress.ip_address("::ffff:10.1.2.3"), networks)
    assert trusted(ipaddress.ip_address("10.1.2.3"), networks)
    assert not trusted(ipaddress.ip_address("::ffff:192.168.0.1"), networks)
    assert not trusted(ipaddress.ip_address("::1"), networks)


@pytest.mark.parametrize("env", [
    {"PARROTROUTER_METRICS_PUBLIC_NETWORKS": "10.0.0.0/33"},
    {"PARROTROUTER_METRICS_PUBLIC_NETWORKS": "not-a-network"},
    {"PARROTROUTER_METRICS_PUBLIC_NETWORKS": ",".join(f"10.0.{i}.0/24" for i in range(65))},
    {"PARROTROUTER_METRICS_TOKEN": "short"},
    {"PARROTROUTER_METRICS_TOKEN": "with a space inside it"},
    {"PARROTROUTER_METRICS_TOKEN": "x" * 257},
    {"PARROTROUTER_METRICS_TOKEN": "token-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"},
    {"PARROTROUTER_METRICS": "maybe"},
])
def test_bad_values_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert "PARROTROUTER_METRICS" in str(info.value)


def test_token_is_masked() -> None:
    settings = load_settings(env={"PARROTROUTER_METRICS_TOKEN": "metrics-token-0123456789"})
    assert settings.metrics_token is not None and settings.metrics_token.reveal() == "metrics-token-0123456789"
    assert "0123456789" not in repr(settings)
