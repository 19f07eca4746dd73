"""Graph rewrites for the exported UNet: attention fused into one ONNX Runtime kernel.

torch.onnx (dynamo) writes each of the UNet's ``scaled_dot_product_attention`` calls as
some twenty nodes: the projections split into heads (Reshape, Transpose), a square-root
scale on queries and keys (Mul), ``MatMul``, ``Softmax``, ``MatMul``, and the heads merged
back. ONNX Runtime's transformer optimizer (``onnxruntime.transformers.optimizer``,
``model_type="unet"``) recognises the patterns of the older TorchScript exporter, not
these, and finds no attention here; on the CPU its other fusions (LayerNorm, GELU) are
ones the session's own graph optimisation already makes, and its GroupNorm, NHWC
convolution and BiasSplitGelu kernels exist for CUDA only. So genserve rewrites the
attention itself: each pattern becomes one ``com.microsoft.MultiHeadAttention`` node (a
tiled kernel on the CPU that never writes the full score matrix out, the fused kernels on
CUDA), taking the three projections' outputs as they are. A pattern that differs in any
way is left as exported, and the export's parity check against PyTorch runs on the
rewritten graph.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

MS_DOMAIN = "com.microsoft"
_HEAD_OPS = {"Reshape", "Transpose", "Mul"}


class _Graph:
    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.graph = model.graph
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in self.graph.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.constants: dict[str, np.ndarray] = {}
        for t in self.graph.initializer:
            if not t.external_data:  # big weights stay on disk; shapes and scales are small
                self.constants[t.name] = numpy_helper.to_array(t)
        for n in self.graph.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    def only_user(self, tensor: str, op: str) -> Any | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def split_heads(self, tensor: str) -> tuple[str, float, int | None] | None:
        """Walk back from a (B, H, ., .) tensor through Reshape/Transpose/scalar Mul to the
        (B, S, D) projection it was split from: (that tensor, scale, heads)."""
        scale, heads = 1.0, None
        for _ in range(8):
            node = self.producer.get(tensor)
            if node is None or node.op_type not in _HEAD_OPS:
                return tensor, scale, heads
            data = node.input[0]
            if node.op_type == "Mul":
                a, b = (self.scalar(i) for i in node.input)
                if (a is None) == (b is None):
                    return None
                scale *= a if a is not None else b  # type: ignore[operator]
                data = node.input[1] if a is not None else node.input[0]
            if node.op_type == "Reshape":
                shape = self._shape(node.input[1])
                if shape is not None and len(shape) == 4:
                    heads = shape[2]
            tensor = data
        return None

    def _shape(self, name: str) -> list[int] | None:
        if name in self.constants:
            return [int(v) for v in self.constants[name].reshape(-1)]
        node = self.producer.get(name)
        if node is None or node.op_type != "Concat":
            return None
        dims: list[int] = []
        for part in node.input:
            value = self.constants.get(part)
            dims.extend([-2] if value is None else [int(v) for v in value.reshape(-1)])
        return dims


def fuse_attention(model: Any) -> int:
    """Rewrite ``model`` (an onnx ModelProto, changed in place); returns how many
    attention patterns became MultiHeadAttention nodes."""
    from onnx import helper

    g = _Graph(model)
    replaced: dict[int, Any] = {}  # id of the node an attention output came from -> MHA
    for softmax in [n for n in g.graph.node if n.op_type == "Softmax"]:
        qk = g.producer.get(softmax.input[0])
        av = g.only_user(softmax.output[0], "MatMul")
        if qk is None or qk.op_type != "MatMul" or av is None or av.input[0] != softmax.output[0]:
            continue
        merge = g.only_user(av.output[0], "Transpose")
        if merge is None or list(merge.attribute[0].ints) != [0, 2, 1, 3]:
            continue
        out = g.only_user(merge.output[0], "Reshape")
        if out is None:
            continue
        q, k, v = (g.split_heads(t) for t in (qk.input[0], qk.input[1], av.input[1]))
        if q is None or k is None or v is None or v[1] != 1.0:
            continue
        heads = q[2]
        if heads is None or heads <= 0 or heads != k[2] or heads != v[2]:
            continue
        replaced[id(out)] = helper.make_node(
            "MultiHeadAttention",
            [q[0], k[0], v[0]],
            [out.output[0]],
            name=f"{out.name}_mha",
            domain=MS_DOMAIN,
            num_heads=heads,
            scale=q[1] * k[1],
        )
    if not replaced:
        return 0
    nodes = [replaced.get(id(n), n) for n in g.graph.node]
    del g.graph.node[:]
    g.graph.node.extend(_live(nodes, {o.name for o in g.graph.output}))
    if all(op.domain != MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(replaced)


def _live(nodes: list[Any], outputs: set[str]) -> list[Any]:
    """``nodes`` without those whose results nothing reads (repeated to a fixed point)."""
    while True:
        used = outputs | {i for n in nodes for i in n.input}
        kept = [n for n in nodes if any(o in used for o in n.output)]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def fuse_attention_file(path: Path) -> int:
    """Rewrite the graph file at ``path`` in place. Weights kept in an external data file
    are not read or rewritten: only the graph changes, and its references stay valid."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    fused = fuse_attention(model)
    if fused:
        onnx.save(model, str(path))
    return fused
