"""API keys: making them, hashing them, and the scopes a key may hold.

Shared by the gateway (which checks keys), ``genserve keys new`` and ``genserve init``
(which make them). A key is 256 random bits; only its SHA-256 is ever stored.
"""

from __future__ import annotations

import hashlib
import secrets

from genserve import kinds

KEY_PREFIX = "gs_"
# Scopes beside the model kinds' own: the metrics endpoint, and everything.
METRICS_SCOPE = "metrics"
ALL_SCOPES = "*"


def new_key() -> str:
    """A fresh API key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def scopes() -> frozenset[str]:
    """Every scope a key may hold: each model kind's, ``metrics`` and ``*``."""
    return frozenset({*(k.scope for k in kinds.kinds()), METRICS_SCOPE, ALL_SCOPES})
