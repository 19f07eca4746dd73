"""ServedModel: the one shape every served model class has.

A service loads its model with ``from_models_dir``, reports ``provider`` and
``describe()`` (GET /v1/model), and hands ``run_batch`` to its ``MicroBatcher``. The GAN
sampler, the translator and the image pipeline all subclass this protocol, so mypy checks
that each keeps it, and they inherit its ``from_models_dir`` and ``describe``; other code
may depend on the protocol alone.

Light on purpose (no onnxruntime, no torch): code that only needs the type imports no
model runtime.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from genserve.artifacts import Manifest, resolve_model_dir
from genserve.config import RuntimeSettings

# What the batcher keys a batch on (GAN: nothing; translation: the decoding Options;
# imagegen: the ImageParams). Contravariant: it is only ever passed in.
KeyT = TypeVar("KeyT", bound=Hashable, contravariant=True)


@runtime_checkable  # lets a loader check a class it was only told the name of
class ServedModel(Protocol[KeyT]):
    """A verified model folder loaded into ONNX Runtime, ready to serve batches."""

    manifest: Manifest
    """The model folder's manifest, as loaded (and verified) from ``genserve.json``."""

    def __init__(self, folder: Path, settings: RuntimeSettings, *, verify: bool = True) -> None:
        """Load the model folder, checking every file's sha256 unless ``verify`` is false."""
        ...

    @property
    def provider(self) -> str:
        """The execution provider of the model's main session (what GET /v1/model shows)."""
        ...

    def describe(self) -> dict[str, Any]:
        """The GET /v1/model body: name, kind, config, provider and source (a class adds
        to it or puts its own settings in config)."""
        m = self.manifest
        return {
            "name": m.name,
            "kind": m.kind,
            "config": m.config,
            "provider": self.provider,
            "source": m.source,
        }

    def run_batch(self, rows: list[Any], key: KeyT, /) -> Sequence[Any]:
        """Run rows of concurrent requests that share ``key`` in one model call; one
        result per row, in order. This is what the service's ``MicroBatcher`` calls."""
        ...

    def cost(self, rows: int, key: KeyT, /) -> float:
        """What a call of ``rows`` rows with ``key`` costs, relative to other calls: the
        batcher lets a cheaper call overtake a costlier one (``max_calls``). Rows, unless
        the model knows better."""
        return float(rows)

    @classmethod
    def from_models_dir(
        cls, models_dir: Path, name: str, settings: RuntimeSettings, *, verify: bool = True
    ) -> Self:
        """Load model ``name`` from ``models_dir`` (a name can never leave the folder),
        checking every file's sha256 unless ``verify`` is false."""
        return cls(resolve_model_dir(models_dir, name), settings, verify=verify)
