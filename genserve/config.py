"""Settings, read from ``GENSERVE_<SECTION>_<NAME>`` environment variables.

Built once at start-up (``Settings()`` in a service's ``__init__`` or the CLI's
``main``), never at import. Every default works on a laptop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class RuntimeSettings(BaseSettings):
    """ONNX Runtime sessions (``GENSERVE_RUNTIME_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_RUNTIME_")

    providers: str = Field(
        "auto",
        description="'auto' (TensorRT, then CUDA, then CPU, as available) or a comma-separated "
        "list of ONNX Runtime execution providers, used in that order",
    )
    intra_op_threads: int = Field(
        0, ge=0, le=256, description="threads per model call; 0 = the CPUs this process may use"
    )
    inter_op_threads: int = Field(1, ge=0, le=256)
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    warmup: bool = True
    io_binding: bool = Field(
        False,
        description="run through ONNX Runtime's IO binding, outputs on the provider's device "
        "(CUDA/TensorRT: the GPU) and an input passed again as the same array kept there "
        "between calls (the UNet's text embeddings across denoising steps)",
    )


class ModelSettings(BaseSettings):
    """Where built models live (``GENSERVE_MODELS_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_MODELS_")

    dir: Path = Field(PROJECT_ROOT / "build" / "models", description="built model folders")
    verify: bool = Field(True, description="check every file's sha256 on load")
    extra_kinds: str = Field(
        "", description="comma-separated 'module:attribute' ModelKinds served beside the built-in"
    )


class ServerSettings(BaseSettings):
    """HTTP limits shared by the services (``GENSERVE_SERVER_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_SERVER_")

    max_body_bytes: int = Field(64 * 1024, ge=1024, le=64 * 1024 * 1024)
    drain_s: float = Field(
        25.0,
        ge=0,
        le=3600,
        description="on SIGTERM, how long work already taken may run before the server stops",
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a request's whole body must arrive within this, from its headers on (408)",
    )
    body_idle_timeout_s: float = Field(
        5.0, gt=0, le=3600, description="the longest wait for the next piece of a body (408)"
    )
    fast_path: bool = Field(
        True,
        description="serve a model service's JSON POST routes without FastAPI's request "
        "handling (services/fastpath.py); false: through FastAPI, for comparison",
    )


class BatchingSettings(BaseSettings):
    """Adaptive batching of one model service."""

    max_batch_size: int = Field(64, ge=1, le=1024, description="rows per ONNX Runtime call")
    max_latency_ms: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description="extra wait for company when the model is idle; 0 = run at once",
    )
    max_queue: int = Field(1024, ge=1, le=1_000_000, description="queued rows before 503")
    max_calls: int = Field(
        1,
        ge=1,
        le=8,
        description="model calls at once: beside the call taken in queue order, a request "
        "that costs less than the costliest of each running call starts at once (cheap "
        "work overtakes costly work); 1 = one call at a time",
    )
    deadline_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="a request without its result this long is answered 504 and, if still "
        "queued, dropped unrun; default: the kind's route timeout",
    )


class GatewaySettings(BaseSettings):
    """The gateway in front of the model services (``GENSERVE_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="GENSERVE_GATEWAY_")

    grpc_port: int = Field(3001, ge=0, le=65535, description="OIP v2 gRPC port; 0 = no gRPC")
    grpc_host: str = Field("127.0.0.1", description="address the gRPC server binds")
    auth: bool = Field(True, description="require API keys; false only for local development")
    keys_file: Path | None = Field(None, description="JSON file of hashed API keys")
    keys: str = Field("", description="the same JSON inline (from a secret), added to the file's")
    rate_per_minute: float = Field(
        600.0, gt=0, le=1e7, description="requests per key per minute, unless its entry says"
    )
    burst: int = Field(20, ge=1, le=100_000, description="requests a key may send at once")
    max_in_flight: int = Field(256, ge=1, le=100_000, description="open requests before 503")
    max_in_flight_per_caller: int = Field(
        0,
        ge=0,
        le=100_000,
        description="open requests of one key (one client address with auth off) before 429; "
        "0 = a quarter of max_in_flight",
    )
    anonymous_rate_per_minute: float = Field(
        0.0,
        ge=0,
        le=1e7,
        description="with auth off, requests per client address per minute; 0 = no rate limit",
    )
    connect_timeout_s: float = Field(0.5, gt=0, le=30, description="connecting to a service")
    timeout_jobs_s: float = Field(
        10.0, gt=0, le=3600, description="control calls: a job's status, result, cancel; model info"
    )
    health_interval_s: float = Field(0.5, gt=0, le=60, description="probing each service")
    cors_origins: str = Field("", description="comma-separated allowed origins; empty = no CORS")

    @property
    def per_caller_in_flight(self) -> int:
        """The open requests one caller may hold: its setting, or a quarter of the total."""
        return self.max_in_flight_per_caller or max(1, self.max_in_flight // 4)


class BackendSettings(BaseModel):
    """Where the gateway finds one model service, and how long it waits for it:
    ``GENSERVE_GATEWAY_<KIND>_URL`` and ``GENSERVE_GATEWAY_TIMEOUT_<KIND>_S``, with the
    defaults the model kind gives (genserve.kinds)."""

    url: str
    timeout_s: float = Field(gt=0, le=3600)

    @classmethod
    def from_env(cls, kind: str, default_url: str, default_timeout_s: float) -> BackendSettings:
        env = kind.upper()
        return cls.model_validate(
            {
                "url": os.environ.get(f"GENSERVE_GATEWAY_{env}_URL", default_url).rstrip("/"),
                "timeout_s": os.environ.get(f"GENSERVE_GATEWAY_TIMEOUT_{env}_S", default_timeout_s),
            }
        )


class Settings(BaseSettings):
    """All settings but the model kinds' own (``ModelKind.settings``). Construct once at
    start-up."""

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
