"""OnnxSession: the one wrapper around ``onnxruntime.InferenceSession``.

It picks execution providers from settings, sets threads and graph optimisation,
reads the model's input/output names, dtypes and shapes once, checks every call's
inputs against them (an ``InvalidInput`` naming the tensor) and warms up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from genserve import cpus
from genserve.artifacts import TensorSpec
from genserve.config import RuntimeSettings
from genserve.errors import ConfigError, InvalidInput, ModelIntegrityError

log = logging.getLogger(__name__)

PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def choose_providers(requested: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """Execution providers to use, best first.

    ``"auto"`` takes TensorRT, then CUDA, then CPU, keeping those ``available``.
    An explicit list (or comma-separated string) is used in its order; asking for a
    provider this build of ONNX Runtime lacks is a ConfigError, not a silent fallback.
    """
    if isinstance(requested, str):
        if requested.strip().lower() == "auto":
            return [p for p in PROVIDER_PREFERENCE if p in available]
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    if not requested:
        raise ConfigError("no execution provider requested; use 'auto' or a list")
    missing = [p for p in requested if p not in available]
    if missing:
        raise ConfigError(
            f"execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"build (available: {', '.join(available)})"
        )
    return list(requested)


def _spec(arg: ort.NodeArg) -> TensorSpec:
    dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, arg.type), dims)


class OnnxSession:
    """One ONNX model file in ONNX Runtime, with its tensor interface checked."""

    def __init__(
        self,
        path: Path,
        settings: RuntimeSettings,
        *,
        expected_inputs: Sequence[TensorSpec] = (),
        expected_outputs: Sequence[TensorSpec] = (),
        warmup_dims: Mapping[str, int] | None = None,
    ) -> None:
        started = time.perf_counter()
        options = ort.SessionOptions()
        # 0: as many threads as CPUs this process may use (its affinity, as genserve serve
        # gives it, capped by a container's CPU quota), not ONNX Runtime's every core.
        options.intra_op_num_threads = settings.intra_op_threads or cpus.budget()
        options.inter_op_num_threads = settings.inter_op_threads
        options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization]
        options.log_severity_level = 3
        self.providers = choose_providers(settings.providers, ort.get_available_providers())
        self._session = ort.InferenceSession(str(path), options, providers=self.providers)
        self.inputs = {a.name: _spec(a) for a in self._session.get_inputs()}
        self._dims = {a.name: list(a.shape) for a in self._session.get_inputs()}
        self.outputs = {a.name: _spec(a) for a in self._session.get_outputs()}
        self._check_interface(path, "inputs", self.inputs, expected_inputs)
        self._check_interface(path, "outputs", self.outputs, expected_outputs)
        self._binding = _Binding(self._session) if settings.io_binding else None
        if settings.warmup:
            self.warmup(warmup_dims or {})
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s on %s in %.2fs", path.name, self.providers[0], self.load_seconds)

    @property
    def provider(self) -> str:
        """The execution provider actually in use (the first one the session kept)."""
        return str(self._session.get_providers()[0])

    @staticmethod
    def _check_interface(
        path: Path, what: str, actual: Mapping[str, TensorSpec], expected: Sequence[TensorSpec]
    ) -> None:
        if expected and {t.name: t for t in expected} != dict(actual):
            raise ModelIntegrityError(
                f"{path.name} {what} {[t.to_dict() for t in actual.values()]} differ from "
                f"the manifest's {[t.to_dict() for t in expected]}"
            )

    def check(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Raise InvalidInput (naming the tensor) unless ``feeds`` match the model's inputs."""
        unknown = set(feeds) - set(self.inputs)
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidInput(f"unknown input tensor {name!r}", field=name)
        for name, spec in self.inputs.items():
            if name not in feeds:
                raise InvalidInput(f"missing input tensor {name!r}", field=name)
            value = feeds[name]
            if value.dtype != np.dtype(spec.dtype):
                raise InvalidInput(
                    f"input {name!r} must be {spec.dtype}, got {value.dtype}", field=name
                )
            if value.ndim != len(spec.shape) or any(
                want is not None and got != want
                for got, want in zip(value.shape, spec.shape, strict=True)
            ):
                raise InvalidInput(
                    f"input {name!r} must have shape {list(spec.shape)} (None = any), "
                    f"got {list(value.shape)}",
                    field=name,
                )

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``feeds`` and run the model; returns every output by name."""
        self.check(feeds)
        if self._binding is not None:
            return self._binding.run(feeds, list(self.outputs))
        values = self._session.run(list(self.outputs), dict(feeds))
        return dict(zip(self.outputs, values, strict=True))

    def warmup(self, dims: Mapping[str, int]) -> None:
        """One run on zeros; a named dynamic dimension takes its size from ``dims``
        (e.g. ``{"h": 8, "w": 8}``), any other dynamic dimension is 1."""
        feeds = {
            name: np.zeros(
                [d if isinstance(d, int) and d >= 0 else dims.get(str(d), 1) for d in shape],
                dtype=self.inputs[name].dtype,
            )
            for name, shape in self._dims.items()
        }
        self.run(feeds)


class _Binding:
    """ONNX Runtime's IO binding for one session (``GENSERVE_RUNTIME_IO_BINDING``).

    Outputs are allocated on the device of the session's first provider; a read-only input
    given again as the very same array object as in the previous call (the text embeddings
    at every denoising step) is not copied to the device again (a writeable array could
    have changed, so it always is). On the CPU provider the device is the host: the same
    code runs, and is tested, without a GPU.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        provider = session.get_providers()[0]
        self.device = (
            "cuda" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        )
        self._session = session
        self._kept: dict[str, tuple[np.ndarray, ort.OrtValue]] = {}

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        binding = self._session.io_binding()
        for name, value in feeds.items():
            kept = self._kept.get(name)
            if kept is None or kept[0] is not value or value.flags.writeable:
                array = np.ascontiguousarray(value)
                kept = (value, ort.OrtValue.ortvalue_from_numpy(array, self.device, 0))
                self._kept[name] = kept
            binding.bind_ortvalue_input(name, kept[1])
        for name in outputs:
            binding.bind_output(name, self.device)
        self._session.run_with_iobinding(binding)
        return dict(zip(outputs, binding.copy_outputs_to_cpu(), strict=True))
