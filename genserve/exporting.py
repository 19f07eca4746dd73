"""What the three exports share: the parity check and how a source folder is recorded.

Build-time only, but light (numpy): an export compares ONNX Runtime's outputs with
PyTorch's as numpy arrays, tensor by tensor, and refuses to finish when any differs by
more than its tolerance.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from genserve.config import PROJECT_ROOT
from genserve.errors import ExportError


def display_path(path: Path) -> str:
    """``path`` relative to the project where it lies inside it, else its name: what a
    manifest records of a source folder (never a host path)."""
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else path.name


def _key(diff: float) -> float:
    # NaN never compares greater, so max() would drop it: count it as the worst.
    return math.inf if math.isnan(diff) else diff


class ParityCheck:
    """The largest absolute difference seen so far per named tensor, and the verdict.

    ``compare`` may be called several times for one name (several batches, several
    decoding steps); the name keeps its largest difference.
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.diffs: dict[str, float] = {}

    def compare(self, name: str, got: np.ndarray, want: np.ndarray) -> float:
        """Record and return max |got - want| for ``name``. Shapes must match exactly
        (broadcasting would hide a wrong output); a mismatch is an ExportError."""
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            raise ExportError(
                f"ONNX Runtime gives {name} of shape {list(got.shape)}, PyTorch {list(want.shape)}"
            )
        diff = float(np.abs(got - want).max(initial=0.0))
        if name not in self.diffs or _key(diff) > _key(self.diffs[name]):
            self.diffs[name] = diff
        return diff

    @property
    def worst(self) -> float:
        """The largest difference over every tensor (NaN if any was NaN; 0 if none)."""
        return max(self.diffs.values(), key=_key, default=0.0)

    def check(self, *, on_failure: str) -> float:
        """Return ``worst``, or raise ExportError naming the tensor that differs most and
        the tolerance; ``on_failure`` ends the message (what the export did about it)."""
        if not self.diffs:
            return 0.0
        name = max(self.diffs, key=lambda n: _key(self.diffs[n]))
        diff = self.diffs[name]
        if not diff <= self.tolerance:  # NaN fails too
            raise ExportError(
                f"ONNX Runtime and PyTorch differ by {diff:.3g} (max abs) on {name}, "
                f"more than the tolerance {self.tolerance:g}; {on_failure}"
            )
        return diff


PRECISIONS = ("fp32", "int8")


def quantize_int8(graph: Path) -> dict[str, object]:
    """Rewrite ``graph`` in place with int8 weights: ONNX Runtime's dynamic quantization,
    per output channel, signed 8-bit weights and activations quantized per call (its
    MatMulInteger kernels use VNNI where the CPU has it). Returns what a manifest records."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # the quantizer logs a line per tensor on the root logger
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(dir=graph.parent) as tmp:
            out = Path(tmp) / graph.name
            quantize_dynamic(
                graph, out, per_channel=True, weight_type=QuantType.QInt8, reduce_range=False
            )
            out.replace(graph)
    finally:
        root.setLevel(level)
    return {"method": "onnxruntime dynamic", "weights": "int8 per channel", "ops": ["MatMul"]}
