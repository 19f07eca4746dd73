"""API keys, scopes and rate limits: the gateway's front door, shared by HTTP and gRPC.

Keys are random tokens shown once (``genserve keys new``); only their SHA-256 is stored,
in a JSON file or an environment variable::

    {"keys": [{"name": "alice", "sha256": "<hex>", "scopes": ["<kind>", "metrics"],
               "rate_per_minute": 120, "burst": 10}]}

A key of high entropy needs no slow hash: SHA-256 cannot be reversed, and comparing
digests does not leak the key through timing. Scopes are the model kinds' names
(genserve.kinds), ``metrics`` for /metrics, or ``*``. Any valid
key may read the API docs. The key itself is never logged: logs name the key's ``name``.

Each key (by its digest) has a token bucket: ``burst`` requests at once, refilled at
``rate_per_minute`` (the key's own, or the gateway's defaults). An empty bucket answers 429
with Retry-After saying when the next request fits. With auth off (local development)
client addresses have no rate limit unless ``anonymous_rate_per_minute`` sets one.

Open requests are bounded twice, on HTTP and gRPC together: ``max_in_flight`` in all
(503 with Retry-After: overload) and ``max_in_flight_per_caller`` per key, or per client
address with auth off (429 with Retry-After: that caller's own budget), so that one caller
holding requests open (a slow client) cannot take every place.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from genserve.config import GatewaySettings
from genserve.errors import (
    ConfigError,
    Forbidden,
    Overloaded,
    RateLimited,
    ShuttingDown,
    TooManyOpenRequests,
    Unauthenticated,
)
from genserve.keys import key_digest, scopes


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named key, or an anonymous client address when auth is off."""

    name: str
    scopes: frozenset[str]
    rate_per_minute: float | None = None
    burst: int | None = None
    anonymous: bool = False
    bucket: str = ""  # what its rate limit is kept under: the key's digest, or the name

    @property
    def bucket_id(self) -> str:
        return self.bucket or self.name

    def allows(self, scope: str | None) -> bool:
        return scope is None or "*" in self.scopes or scope in self.scopes


@dataclass
class KeyStore:
    by_digest: dict[str, Principal] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> KeyStore:
        store = cls()
        if settings.keys_file is not None:
            try:
                text = Path(settings.keys_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read keys file {settings.keys_file}: {exc}") from None
            store.add_json(text, str(settings.keys_file))
        if settings.keys.strip():
            store.add_json(settings.keys, "GENSERVE_GATEWAY_KEYS")
        return store

    def add_json(self, text: str, where: str) -> None:
        try:
            doc = json.loads(text)
            entries = doc["keys"]
            assert isinstance(entries, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ConfigError(f'{where}: expected {{"keys": [...]}}') from None
        names = {p.name for p in self.by_digest.values()}
        for i, entry in enumerate(entries):
            digest = _digest_of(entry, f"{where} keys[{i}]")
            principal = _principal(entry, digest, f"{where} keys[{i}]")
            if principal.name in names or digest in self.by_digest:
                # Logs name the key; two keys under one name could not be told apart.
                raise ConfigError(
                    f"{where} keys[{i}]: the key {principal.name!r} is listed twice "
                    "(every key needs its own name and its own secret)"
                )
            names.add(principal.name)
            self.by_digest[digest] = principal

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated(
                "send an API key: Authorization: Bearer <key>", field="authorization"
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use Authorization: Bearer <key>", field="authorization")
        digest = key_digest(token.strip())
        for known, principal in self.by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise Unauthenticated("the API key is not valid", field="authorization")


def _digest_of(entry: Any, where: str) -> str:
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise ConfigError(f"{where}: sha256 must be 64 hex digits (the key's digest)")
    return digest.lower()


def _principal(entry: dict[str, Any], digest: str, where: str) -> Principal:
    name, wanted, rate = entry.get("name"), entry.get("scopes", ["*"]), entry.get("rate_per_minute")
    burst = entry.get("burst")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a non-empty string")
    known = scopes()
    if not isinstance(wanted, list) or not set(wanted) <= known:
        raise ConfigError(f"{where}: scopes must be a list drawn from {sorted(known)}")
    if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
        raise ConfigError(f"{where}: rate_per_minute must be a positive number")
    if burst is not None and (not isinstance(burst, int) or isinstance(burst, bool) or burst < 1):
        raise ConfigError(f"{where}: burst must be a positive integer")
    rate_per_minute = None if rate is None else float(rate)
    return Principal(name, frozenset(wanted), rate_per_minute, burst, bucket=digest)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


class RateLimiter:
    """Token buckets per principal; thread-safe, as the gRPC server runs on its own thread."""

    def __init__(self, rate_per_minute: float, burst: int, max_buckets: int = 100_000) -> None:
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self.max_buckets = max_buckets
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, principal: Principal, now: float | None = None) -> None:
        """Spend one request, or raise RateLimited saying when the next one fits."""
        rate = (principal.rate_per_minute or self.rate_per_minute) / 60.0
        burst = float(principal.burst or self.burst)
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = principal.bucket_id
            tokens, last = self._buckets.get(bucket, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[bucket] = (tokens, now)
                raise RateLimited(
                    f"rate limit of {rate * 60:g} requests per minute reached",
                    retry_after_s=(1.0 - tokens) / rate,
                )
            if len(self._buckets) >= self.max_buckets and bucket not in self._buckets:
                self._buckets.clear()  # bounded: forget every bucket rather than grow
            self._buckets[bucket] = (tokens - 1.0, now)


class Guard:
    """Authentication, scope and rate limit for one call, HTTP or gRPC."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.auth = settings.auth
        self.keys = KeyStore.from_settings(settings) if settings.auth else KeyStore()
        if self.auth and not self.keys.by_digest:
            raise ConfigError(
                "authentication is on but no API keys are configured: set "
                "GENSERVE_GATEWAY_KEYS_FILE or GENSERVE_GATEWAY_KEYS, "
                "or GENSERVE_GATEWAY_AUTH=false"
            )
        self.limiter = RateLimiter(settings.rate_per_minute, settings.burst)
        self.anonymous_rate_per_minute = settings.anonymous_rate_per_minute
        self.max_in_flight = settings.max_in_flight
        self.max_per_caller = settings.per_caller_in_flight
        self.in_flight = 0
        self.draining = False  # SIGTERM: no new places, the open requests finish
        self.open_by_caller: dict[str, int] = {}  # caller -> its open requests (none: absent)
        self._lock = threading.Lock()

    @contextmanager
    def _held(self, caller: str | None) -> Iterator[None]:
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
                if caller is not None:
                    left = self.open_by_caller[caller] - 1
                    if left:
                        self.open_by_caller[caller] = left
                    else:
                        del self.open_by_caller[caller]

    def slot(
        self, caller: str | None = None, *, bounded: bool = True
    ) -> AbstractContextManager[None]:
        """A place among the open requests (HTTP and gRPC alike), or 503 at once; and, for
        a ``caller`` (its ``Principal.bucket_id``), one of its own places, or 429 at once.
        Given back when the context exits, however it exits (answer, error, the client
        gone, a timeout). Not ``bounded`` (health, readiness, metadata: answered at once
        from the gateway's own state): no place is taken and none is refused, so a caller
        at its bound still reads "ready"; while draining it is refused all the same."""
        if self.draining:
            raise ShuttingDown("the gateway is shutting down")
        if not bounded:
            return nullcontext()
        with self._lock:
            held = 0 if caller is None else self.open_by_caller.get(caller, 0)
            if held >= self.max_per_caller:
                raise TooManyOpenRequests(
                    f"this caller already has {held} open requests, its limit; "
                    "wait for one to finish"
                )
            if self.in_flight >= self.max_in_flight:
                raise Overloaded("the gateway is at its limit of open requests")
            self.in_flight += 1
            if caller is not None:
                self.open_by_caller[caller] = held + 1
        return self._held(caller)

    def anonymous(self, client: str) -> Principal:
        """A caller with auth off: its client address, rate limited only when
        ``anonymous_rate_per_minute`` is set."""
        rate = self.anonymous_rate_per_minute or None
        return Principal(f"anonymous@{client}", frozenset({"*"}), rate, anonymous=True)

    def check(
        self, authorization: str | None, scope: str | None, client: str, *, limit: bool = True
    ) -> Principal:
        """The caller, if it may use ``scope`` (None: any caller with a valid key)."""
        if not self.auth:
            principal = self.anonymous(client)
            limit = limit and principal.rate_per_minute is not None
        else:
            principal = self.keys.authenticate(authorization)
            if not principal.allows(scope):
                raise Forbidden(f"this key may not use {scope}", field="authorization")
        if limit:
            self.limiter.take(principal)
        return principal


def peer_address(peer: str) -> str:
    """The client's address without its port ("ipv4:10.0.0.7:51234" -> "10.0.0.7")."""
    kind, _, rest = unquote(peer).partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer
