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


PRECISIONS = ("fp32", "int8", "fp16")


def quantize_int8(
    graph: Path, *, ops: tuple[str, ...] | None = None, external: bool = False
) -> dict[str, object]:
    """Rewrite ``graph`` in place with int8 weights: ONNX Runtime's dynamic quantization,
    per output channel, signed 8-bit weights and activations quantized per call (its
    MatMulInteger kernels use VNNI where the CPU has it), of the ``ops`` only (None: every
    op kind the quantizer knows, which in a transformer's graphs means its MatMuls).
    ``external``: the graph keeps its weights in a ``.data`` file beside it (over
    protobuf's 2 GB). Returns what a manifest records."""
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
                graph,
                out,
                op_types_to_quantize=list(ops) if ops else None,
                per_channel=True,
                weight_type=QuantType.QInt8,
                reduce_range=False,
                use_external_data_format=external,
            )
            _replace(graph, Path(tmp))
    finally:
        root.setLevel(level)
    return {
        "method": "onnxruntime dynamic",
        "weights": "int8 per channel",
        "ops": list(ops) if ops else ["MatMul"],
    }


def convert_fp16(graph: Path, *, external: bool = False) -> dict[str, object]:
    """Rewrite ``graph`` in place with float16 weights and arithmetic, its inputs and
    outputs still float32 (ONNX Runtime's float16 converter, ``keep_io_types``): for GPUs,
    whose tensor cores run float16; on the CPU it runs, slower, which lets the tests check
    it. ``external``: the weights live in a ``.data`` file beside the graph."""
    import tempfile

    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(graph)), keep_io_types=True)
    with tempfile.TemporaryDirectory(dir=graph.parent) as tmp:
        out = Path(tmp) / graph.name
        onnx.save(model, str(out), save_as_external_data=external, location=graph.name + ".data")
        _replace(graph, Path(tmp))
    return {"method": "onnxruntime float16 converter", "io": "float32"}


def _replace(graph: Path, written: Path) -> None:
    """Put the rewritten ``graph`` (and its weight file, if any) from the folder
    ``written`` in place of the old one, readable as the exporter's own files are (the
    writers make the weight file 0600)."""
    for old in graph.parent.glob(graph.name + "*"):
        old.unlink()
    for new in written.iterdir():
        new.chmod(0o644)
        new.replace(graph.parent / new.name)
