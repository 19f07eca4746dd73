"""The one table of model kinds.

A model kind (translation, imagegen, gan, ...) is declared once, as a ``ModelKind`` in its
own folder (``genserve/<kind>/api.py``), and listed here. Everything that differs per
kind is read from that declaration: the settings (``GENSERVE_<KIND>_*``), the launcher's
ports, the CLI's train/export/pull/bench commands, the gateway's routes, scopes,
timeouts, backends and Open Inference Protocol tensors, the Makefile's model rules and
the tests' fixtures. Adding a kind is its folder, its service file and one line in
``BUILTIN`` (or, without editing genserve, ``GENSERVE_MODELS_EXTRA_KINDS``).

Light on purpose: importing this module imports pydantic and numpy, never onnxruntime
or torch, so the gateway and the CLI can read the table without a model runtime.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from genserve.config import BatchingSettings, ModelSettings, RuntimeSettings
from genserve.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from genserve.protocol.mapping import ModelSpec
    from genserve.serving import ServedModel

# The kinds genserve ships, each "module:attribute" of a ModelKind.
BUILTIN = (
    "genserve.gan.api:KIND",
    "genserve.translation.api:KIND",
    "genserve.imagegen.api:KIND",
)
DEFAULT_BASE_PORT = 3000  # genserve serve's gateway; each service at + its port offset
# Port offsets below this are the gateway's own (HTTP at +0, gRPC at +1).
FIRST_SERVICE_OFFSET = 10
RESERVED_NAMES = frozenset({"gateway", "metrics", "models", "health", "init"})
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PARAM = re.compile(r"\{([a-z_]+)\}")


class KindSettings(BatchingSettings):
    """A model service's settings: which model folder it serves, and its batching.

    Each kind subclasses this with its own ``env_prefix`` (``GENSERVE_<KIND>_``) and
    defaults.
    """

    model: str = Field(description="model folder name under GENSERVE_MODELS_DIR")


@dataclass(frozen=True)
class Route:
    """One REST route of a kind, served at the same path by its service and the gateway."""

    method: str  # GET, POST, DELETE
    path: str  # "/v1/jobs/{job_id}"
    summary: str
    request: type[BaseModel] | None = None  # the JSON body, validated at the front door
    response: type[BaseModel] | None = None  # the JSON answer, for the OpenAPI document
    status_code: int = 200
    # A short call (a job's status, result or cancellation): the gateway gives it the
    # control timeout, not the kind's inference timeout.
    control: bool = False
    # What its success may be besides JSON, chosen by the request's `format`
    # ("image/png", ...): the OpenAPI document declares each.
    media_types: tuple[str, ...] = ()
    # Statuses its service may answer beyond those the gateway derives for every route
    # (validation, keys, limits, a service down or slow; see services/openapi.py): another
    # success (202 while a job stops) or the resource's own refusal (409).
    statuses: tuple[int, ...] = ()

    @property
    def params(self) -> tuple[str, ...]:
        """Path parameters, in order (``("job_id",)``)."""
        return tuple(_PARAM.findall(self.path))

    @property
    def prefix(self) -> str:
        """The literal part before the first parameter (``/v1/jobs``)."""
        return self.path.split("{", 1)[0].rstrip("/")


@dataclass(frozen=True)
class PullSpec:
    """What ``genserve models pull`` fetches of a hub checkpoint of this kind."""

    patterns: tuple[str, ...]  # allow-patterns for the hub client
    weights: str  # the safetensors file that must be among them


@dataclass(frozen=True)
class Example:
    """A small, cheap request of a kind, the same over REST and the inference protocol:
    what smoke tests, load tests and ``genserve bench gateway`` send."""

    path: str  # a POST route of the kind
    body: dict[str, Any]  # its JSON body
    inputs: tuple[tuple[str, str, tuple[Any, ...]], ...]  # OIP inputs: (name, datatype, values)
    parameters: dict[str, Any] = field(default_factory=dict)  # OIP request parameters


@dataclass(frozen=True)
class ModelKind:
    """Everything genserve needs to know about one kind of model."""

    name: str  # also its scope, its folder under models/ and its settings' section
    title: str  # one line for the docs
    service: str  # the BentoML service, "module:Class"
    port_offset: int  # genserve serve: the service's port is the base port + this
    settings: type[KindSettings]  # GENSERVE_<NAME>_*
    model: str  # the served model class ("module:Class"), a genserve.serving.ServedModel
    routes: tuple[Route, ...]
    oip: ModelSpec  # its Open Inference Protocol v2 tensors and their REST mapping
    timeout_s: float  # the gateway's default timeout for its inference routes
    export: str  # build the ONNX folder: "module:function(weights_dir, out_dir) -> dict"
    train: str | None = None  # "module:function(out, **recipe overrides) -> dict"
    steps_key: str = "steps"  # the recipe entry that `models train --steps` sets
    bench: str | None = None  # "module:function(threads=, seconds=) -> exit code"
    pull: PullSpec | None = None
    example: Example | None = None
    cpu_weight: float = 1.0  # its share of the machine's CPUs under genserve serve
    # What `genserve models export --precision` may build: another precision is another
    # model folder (<kind>-<precision>), served by the same code, chosen with <KIND>_MODEL.
    precisions: tuple[str, ...] = ("fp32",)

    @property
    def scope(self) -> str:
        """The API-key scope that may call this kind."""
        return self.name

    @property
    def env_name(self) -> str:
        return self.name.upper()

    def route(self, method: str, path: str) -> Route:
        for r in self.routes:
            if r.method == method and r.path == path:
                return r
        raise KeyError(f"{self.name} has no route {method} {path}")

    def load(self, models: ModelSettings, runtime: RuntimeSettings, folder: str) -> ServedModel:
        """The served model in ``models.dir / folder``, verified and warmed up."""
        cls = resolve(self.model)
        model: ServedModel = cls.from_models_dir(models.dir, folder, runtime, verify=models.verify)
        return model


def resolve(ref: str) -> Any:
    """The object a ``"module:attribute"`` reference names (imported on demand)."""
    module, _, attribute = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {ref!r}: {exc}") from None


def _check(kinds: list[ModelKind]) -> None:
    seen_names: set[str] = set()
    seen_offsets: dict[int, str] = {}
    seen_prefixes: dict[str, str] = {}
    for kind in kinds:
        if not _NAME.fullmatch(kind.name) or kind.name in RESERVED_NAMES:
            raise ConfigError(f"model kind name {kind.name!r} is not allowed")
        if kind.name in seen_names:
            raise ConfigError(f"model kind {kind.name!r} is registered twice")
        seen_names.add(kind.name)
        if kind.port_offset < FIRST_SERVICE_OFFSET or kind.port_offset in seen_offsets:
            raise ConfigError(
                f"{kind.name}: port offset {kind.port_offset} is taken or below "
                f"{FIRST_SERVICE_OFFSET} ({seen_offsets.get(kind.port_offset, 'the gateway')})"
            )
        seen_offsets[kind.port_offset] = kind.name
        if kind.oip.name != kind.name:
            raise ConfigError(f"{kind.name}: its protocol model is named {kind.oip.name!r}")
        if kind.example is not None:
            kind.route("POST", kind.example.path)  # raises if the example names no route
        for route in kind.routes:
            if not route.path.startswith("/v1/") or route.prefix.startswith("/v1/models"):
                raise ConfigError(f"{kind.name}: route {route.path} must be under /v1/")
            owner = seen_prefixes.setdefault(route.prefix, kind.name)
            if owner != kind.name:
                raise ConfigError(f"{kind.name}: route {route.path} belongs to {owner}")


def load(refs: tuple[str, ...]) -> dict[str, ModelKind]:
    """The kinds the references name, checked: unique names, ports and routes."""
    kinds = []
    for ref in refs:
        kind = resolve(ref)
        if not isinstance(kind, ModelKind):
            raise ConfigError(f"{ref!r} is not a ModelKind")
        kinds.append(kind)
    _check(kinds)
    return {k.name: k for k in kinds}


@cache
def registry() -> dict[str, ModelKind]:
    """Every kind: the built-in ones and ``GENSERVE_MODELS_EXTRA_KINDS``. Read once, on
    first use (at start-up), never at import."""
    extra = tuple(r.strip() for r in ModelSettings().extra_kinds.split(",") if r.strip())
    return load(BUILTIN + extra)


def kinds() -> Iterator[ModelKind]:
    return iter(registry().values())


def names() -> list[str]:
    return list(registry())


def get(name: str, *, field: str = "model") -> ModelKind:
    """The kind called ``name``, or 404 naming the known ones."""
    kind = registry().get(name)
    if kind is None:
        raise NotFound(f"no model named {name!r}; models: {sorted(registry())}", field=field)
    return kind


def entry(ref: str | None, what: str, kind: ModelKind) -> Callable[..., Any]:
    """A kind's train/export/bench function, or ConfigError when it has none."""
    if ref is None:
        raise ConfigError(f"model kind {kind.name!r} has no {what} command")
    fn: Callable[..., Any] = resolve(ref)
    return fn


def main(argv: list[str]) -> int:
    """For scripts (the container entrypoint): ``python -m genserve.kinds`` prints the
    kinds' names; ``python -m genserve.kinds service NAME`` prints NAME's service target."""
    if not argv:
        print(" ".join(names()))
        return 0
    if len(argv) == 2 and argv[0] == "service" and argv[1] in registry():
        print(registry()[argv[1]].service)
        return 0
    print(f"usage: python -m genserve.kinds [service {'|'.join(names())}]", file=sys.stderr)
    return 64


if __name__ == "__main__":
    # Run as a script this module is __main__; the kinds' api modules import
    # genserve.kinds, a second copy, whose ModelKind class is the one to use.
    from genserve import kinds as registered

    sys.exit(registered.main(sys.argv[1:]))
