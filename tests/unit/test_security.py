"""API keys (hashed, scoped) and per-key token buckets."""

from __future__ import annotations

import asyncio
import json

import pytest

from genserve.config import GatewaySettings
from genserve.errors import ConfigError, Forbidden, RateLimited, RequestTimeout, Unauthenticated
from genserve.keys import key_digest, new_key
from services.security import Guard, KeyStore, Principal, RateLimiter, peer_address


def settings(tmp_path, entries, **kw) -> GatewaySettings:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": entries}))
    return GatewaySettings(keys_file=path, **kw)


def test_keys_are_random_and_only_their_digest_is_stored(tmp_path) -> None:
    a, b = new_key(), new_key()
    assert a != b and a.startswith("gs_") and len(a) > 40
    guard = Guard(settings(tmp_path, [{"name": "a", "sha256": key_digest(a)}]))
    assert guard.check(f"Bearer {a}", "gan", "1.2.3.4").name == "a"
    assert a not in (tmp_path / "keys.json").read_text()
    for bad in (None, "", "Bearer", f"Basic {a}", f"Bearer {b}", f"Bearer {a}x"):
        with pytest.raises(Unauthenticated) as info:
            guard.check(bad, "gan", "1.2.3.4")
        assert info.value.field == "authorization" and info.value.http_status == 401


def test_scopes(tmp_path) -> None:
    key = new_key()
    entry = {"name": "g", "sha256": key_digest(key), "scopes": ["gan", "metrics"]}
    guard = Guard(settings(tmp_path, [entry]))
    assert guard.check(f"Bearer {key}", "gan", "-").allows("metrics")
    assert guard.check(f"Bearer {key}", None, "-")  # docs: any valid key
    with pytest.raises(Forbidden) as info:
        guard.check(f"Bearer {key}", "translation", "-")
    assert info.value.http_status == 403
    assert Principal("x", frozenset({"*"})).allows("imagegen")


def test_keys_from_env_json_add_to_the_file(tmp_path) -> None:
    k1, k2 = new_key(), new_key()
    s = settings(
        tmp_path,
        [{"name": "file", "sha256": key_digest(k1)}],
        keys=json.dumps({"keys": [{"name": "env", "sha256": key_digest(k2)}]}),
    )
    store = KeyStore.from_settings(s)
    assert store.authenticate(f"Bearer {k2}").name == "env"
    assert store.authenticate(f"bearer {k1}").name == "file"


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "x", "sha256": "abc"},
        {"name": "", "sha256": "0" * 64},
        {"name": "x", "sha256": "z" * 64},
        {"name": "x", "sha256": "0" * 64, "scopes": ["admin"]},
        {"name": "x", "sha256": "0" * 64, "rate_per_minute": -1},
        {"name": "x", "sha256": "0" * 64, "burst": 0},
        "not an object",
    ],
)
def test_bad_key_entries_are_config_errors(tmp_path, entry) -> None:
    with pytest.raises(ConfigError):
        Guard(settings(tmp_path, [entry]))


def test_auth_on_without_keys_refuses_to_start_and_off_is_anonymous_per_client() -> None:
    with pytest.raises(ConfigError, match="no API keys"):
        Guard(GatewaySettings())
    guard = Guard(GatewaySettings(auth=False, burst=1, anonymous_rate_per_minute=60))
    assert guard.check(None, "gan", "10.0.0.1").anonymous
    assert guard.check(None, "gan", "10.0.0.2").name == "anonymous@10.0.0.2"
    with pytest.raises(RateLimited) as info:
        guard.check(None, "gan", "10.0.0.1")
    assert "60 requests per minute" in info.value.message


def test_auth_off_has_no_rate_limit_unless_set() -> None:
    """Local development: one load generator on one address is not held to a key's
    budget (the keyed defaults gave it 429 at 10 a second); the open-request bounds hold."""
    guard = Guard(GatewaySettings(auth=False, rate_per_minute=60, burst=1))
    assert guard.check(None, "gan", "127.0.0.1").rate_per_minute is None
    for _ in range(1000):
        guard.check(None, "gan", "127.0.0.1")
    assert GatewaySettings().anonymous_rate_per_minute == 0


def test_token_bucket_refills_at_the_rate_and_says_when() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=3)  # one a second
    p = Principal("p", frozenset({"*"}))
    for _ in range(3):
        limiter.take(p, now=100.0)
    with pytest.raises(RateLimited) as info:
        limiter.take(p, now=100.0)
    assert info.value.http_status == 429 and info.value.retry_after_s == pytest.approx(1.0)
    with pytest.raises(RateLimited) as info:
        limiter.take(p, now=100.5)
    assert info.value.retry_after_s == pytest.approx(0.5)
    limiter.take(p, now=101.0)  # refilled one token
    # A key's own rate and burst win over the defaults.
    fast = Principal("fast", frozenset({"*"}), rate_per_minute=6000, burst=1)
    limiter.take(fast, now=0.0)
    with pytest.raises(RateLimited):
        limiter.take(fast, now=0.0)
    limiter.take(fast, now=0.01)


def test_open_requests_are_bounded() -> None:
    from genserve.errors import Overloaded

    guard = Guard(GatewaySettings(auth=False, max_in_flight=2))
    with guard.slot(), guard.slot():
        with pytest.raises(Overloaded) as info:
            guard.slot()
        assert info.value.http_status == 503 and info.value.retry_after_s
    assert guard.in_flight == 0
    with guard.slot():  # freed, even after an error inside
        pass
    with pytest.raises(RuntimeError), guard.slot():
        raise RuntimeError("boom")
    assert guard.in_flight == 0


def test_open_requests_are_bounded_per_caller_too() -> None:
    from genserve.errors import Overloaded, TooManyOpenRequests

    guard = Guard(GatewaySettings(auth=False, max_in_flight=5, max_in_flight_per_caller=2))
    assert guard.max_per_caller == 2
    with guard.slot("a"), guard.slot("a"):
        with pytest.raises(TooManyOpenRequests) as info:
            guard.slot("a")  # its own bound: 429, not overload
        assert info.value.http_status == 429 and info.value.retry_after_s
        assert info.value.code == "too_many_open_requests"
        assert info.value.grpc_code == "RESOURCE_EXHAUSTED"
        assert info.value.http_headers() == {"connection": "close"}
        with guard.slot("b"), guard.slot("b"), guard.slot(None), pytest.raises(Overloaded):
            guard.slot("c")  # everyone's bound: 503
        assert guard.open_by_caller == {"a": 2}
    assert guard.in_flight == 0 and guard.open_by_caller == {}
    # Given back however the request ends: an error, a cancellation, a timeout.
    for exc in (RuntimeError("boom"), asyncio.CancelledError(), RequestTimeout("late")):
        with pytest.raises(type(exc)), guard.slot("a"):
            raise exc
    assert guard.in_flight == 0 and guard.open_by_caller == {}


def test_readiness_and_metadata_take_no_place_but_are_refused_while_draining() -> None:
    from genserve.errors import ShuttingDown, TooManyOpenRequests

    guard = Guard(GatewaySettings(auth=False, max_in_flight=1, max_in_flight_per_caller=1))
    with guard.slot("a"):  # the caller's bound and the gateway's both full
        with pytest.raises(TooManyOpenRequests):
            guard.slot("a")
        with guard.slot("a", bounded=False), guard.slot("b", bounded=False):
            assert guard.in_flight == 1 and guard.open_by_caller == {"a": 1}
    assert guard.in_flight == 0 and guard.open_by_caller == {}
    guard.draining = True  # readiness while draining: still shutting_down (not ready)
    for bounded in (True, False):
        with pytest.raises(ShuttingDown):
            guard.slot("a", bounded=bounded)


def test_the_per_caller_bound_defaults_to_a_quarter_and_is_shared_by_http_and_grpc() -> None:
    assert GatewaySettings().per_caller_in_flight == 64  # a quarter of 256
    assert GatewaySettings(max_in_flight=3).per_caller_in_flight == 1
    assert GatewaySettings(max_in_flight_per_caller=100).per_caller_in_flight == 100
    guard = Guard(GatewaySettings(auth=False))
    # With auth off a caller is its address, the same over HTTP (scope["client"]) and gRPC.
    http = guard.check(None, "gan", "::1").bucket_id
    assert http == guard.check(None, "gan", peer_address("ipv6:[::1]:5555")).bucket_id


def test_grpc_peers_are_keyed_by_address_not_port() -> None:
    from services.security import peer_address

    assert peer_address("ipv4:10.0.0.7:51234") == "10.0.0.7"
    assert peer_address("ipv6:[::1]:51234") == "::1"
    assert peer_address("ipv6:%5B::1%5D:51234") == "::1"
    assert peer_address("unix:/tmp/sock") == "unix:/tmp/sock"


def test_each_key_has_its_own_bucket_and_names_are_unique(tmp_path) -> None:
    a, b = new_key(), new_key()
    same_name = [
        {"name": "team", "sha256": key_digest(a), "burst": 1, "rate_per_minute": 1},
        {"name": "team", "sha256": key_digest(b), "burst": 1, "rate_per_minute": 1},
    ]
    with pytest.raises(ConfigError, match="'team' is listed twice"):
        Guard(settings(tmp_path, same_name))
    twice = [{"name": "x", "sha256": key_digest(a)}, {"name": "y", "sha256": key_digest(a)}]
    with pytest.raises(ConfigError, match="listed twice"):
        Guard(settings(tmp_path, twice))
    # Buckets follow the key, not its name: equal names (as from two stores) never share.
    limiter = RateLimiter(rate_per_minute=1, burst=1)
    first = Principal("team", frozenset({"*"}), bucket=key_digest(a))
    second = Principal("team", frozenset({"*"}), bucket=key_digest(b))
    limiter.take(first, now=0.0)
    limiter.take(second, now=0.0)  # its own bucket: not limited by the first key's
    with pytest.raises(RateLimited):
        limiter.take(first, now=0.0)
