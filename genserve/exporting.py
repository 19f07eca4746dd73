"""What the three exports share: the parity check and how a source folder is recorded.

Build-time only, but light (numpy): an export compares ONNX Runtime's outputs with
PyTorch's as numpy arrays, tensor by tensor, and refuses to finish when any differs by
more than its tolerance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    per output channel, signed weights and activations quantized per call and per row
    (``quantize_per_row``), of the ``ops`` only (None: every op kind the quantizer knows,
    which in a transformer's graphs means its MatMuls).

    The weights use 7 bits of the 8 (ONNX Runtime's ``reduce_range``, [-64, 64]): on x86
    CPUs without VNNI (AVX2 and AVX-512 alone, such as AMD's Zen 3) its integer kernels
    multiply unsigned activations by signed weights with ``VPMADDUBSW``, which adds each
    pair of products in 16 bits and saturates there: with full-range weights a pair of
    large activations and weights of one sign (255 x 127 x 2 > 32,767) clipped, and a
    product could lose most of its value (up to 10x int8's own rounding error on random
    data, 0.22 of a row's largest output in the unit test). 255 x 64 x 2 fits, on every
    CPU; VNNI's ``VPDPBUSD`` adds in 32 bits and never needed it.
    ``external``: the graph keeps its weights in a ``.data`` file beside it (over
    protobuf's 2 GB). Returns what a manifest records."""
    import logging
    import tempfile

    import onnx
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
                reduce_range=True,
                use_external_data_format=external,
            )
            model = onnx.load(str(out))
            rows = quantize_per_row(model)
            for old in Path(tmp).iterdir():
                old.unlink()
            onnx.save(
                model,
                str(out),
                save_as_external_data=external,
                location=f"{graph.name}.data",
            )
            _replace(graph, Path(tmp))
    finally:
        root.setLevel(level)
    return {
        "method": "onnxruntime dynamic",
        "weights": "int8 per channel, 7-bit range",
        "activations": "uint8 per row",
        "quantized_inputs": rows,
        "ops": list(ops) if ops else ["MatMul"],
    }


def quantize_per_row(model: Any) -> int:
    """Make ``model``'s dynamic quantization batch-invariant, in place; how many
    quantizers it rewrote.

    ONNX Runtime's ``DynamicQuantizeLinear`` takes one scale for its whole input tensor,
    so a row's int8 values, and its result, depended on the other rows of the batch: a
    sentence translated alone and beside others got different scores (and, near a tie,
    could get other tokens). Each is replaced by symmetric quantization per row (per
    token: the last axis), into uint8 around a zero point of 128, which the integer
    MatMul kernels take as they took the old output (the unsigned-by-signed form).
    A quantizer is five ops: each row's largest magnitude (Abs, ReduceMax, Max with a
    tiny floor for a row of zeros), the row divided by it, and ``QuantizeLinear`` with a
    scale of 1/127 and a zero point of 128 (rounding, saturation and the cast in one
    kernel); in the decoder's step, where a batch is one token a row, the cost of these
    graphs is the count of their ops more than their arithmetic. Each product
    (MatMulInteger, Cast, Mul by the two scales) becomes ONNX Runtime's
    ``MatMulIntegerToFloat`` with that 1/127 as the input's scale, and the row maxima, a
    column ``[..., 1]``, multiply its float result: that kernel takes a scalar or a
    per-column scale for its input, not a per-row one (given the column, its results
    drifted 5x further from float32), and left unfused the three ops cost 40% more."""
    from onnx import helper, numpy_helper

    graph = model.graph
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only(name: str, op: str) -> Any:
        found = consumers.get(name, [])
        if len(found) != 1 or found[0].op_type != op:
            raise ExportError(f"per-row quantization: {name} does not feed one {op}")
        return found[0]

    const: dict[str, np.ndarray] = {
        "per_row_axes": np.array([-1], dtype=np.int64),
        "per_row_tiny": np.array(1e-30, dtype=np.float32),
        "per_row_inv127": np.array(1 / 127, dtype=np.float32),
        "per_row_zero_point": np.array(128, dtype=np.uint8),
    }
    before: dict[str, list[Any]] = {}  # a node (its first output) -> nodes in its place
    count = 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            continue
        count += 1
        x, (q, scale, zero_point) = node.input[0], node.output
        t = f"{node.name}_per_row"
        rows = f"{t}_range"  # each row's largest magnitude; its scale is rows / 127
        before[node.output[0]] = [
            helper.make_node("Abs", [x], [f"{t}_abs"]),
            helper.make_node("ReduceMax", [f"{t}_abs", "per_row_axes"], [f"{t}_max"], keepdims=1),
            helper.make_node("Max", [f"{t}_max", "per_row_tiny"], [rows]),
            helper.make_node("Div", [x, rows], [f"{t}_unit"]),
            helper.make_node(
                "QuantizeLinear", [f"{t}_unit", "per_row_inv127", "per_row_zero_point"], [q]
            ),
        ]
        for scales in consumers.get(scale, []):  # Mul(input scale, weight scale) each
            if scales.op_type != "Mul":
                raise ExportError(f"per-row quantization: {scale} feeds a {scales.op_type}")
            before[scales.output[0]] = []
        for matmul in consumers[q]:
            if matmul.op_type != "MatMulInteger" or matmul.input[2] != zero_point:
                raise ExportError(f"per-row quantization: {q} feeds a {matmul.op_type}")
            cast = only(matmul.output[0], "Cast")
            mul = only(cast.output[0], "Mul")
            scales_out = next(i for i in mul.input if i != cast.output[0])
            scales = next(n for n in consumers[scale] if n.output[0] == scales_out)
            weight_scale = next(i for i in scales.input if i != scale)
            out = mul.output[0]
            zero_points = ["per_row_zero_point", *matmul.input[3:4]]  # input's, weights'
            before[matmul.output[0]] = before[cast.output[0]] = []
            before[out] = [
                helper.make_node(
                    "MatMulIntegerToFloat",
                    [q, matmul.input[1], "per_row_inv127", weight_scale, *zero_points],
                    [f"{out}_per_row"],
                    domain="com.microsoft",
                ),
                helper.make_node("Mul", [f"{out}_per_row", rows], [out]),
            ]
    nodes = [n for node in graph.node for n in before.get(node.output[0], [node])]
    if count:
        graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in const.items())
        del graph.node[:]
        graph.node.extend(nodes)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return count


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
