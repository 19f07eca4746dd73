"""The ``double`` kind's model: built as ONNX (no torch), served from ONNX Runtime."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import TensorSpec, load_manifest, write_manifest
from genserve.config import RuntimeSettings
from genserve.runtime import OnnxSession
from genserve.serving import ServedModel

MODEL_FILE = "double.onnx"
INPUTS = (TensorSpec("x", "float32", (None, 1)),)
OUTPUTS = (TensorSpec("y", "float32", (None, 1)),)


def export(weights: Path, out: Path) -> dict[str, Any]:
    """Write ``out/double.onnx`` (y = 2 x) and its manifest; ``weights`` is unused."""
    import onnx
    from onnx import TensorProto, helper

    out.mkdir(parents=True, exist_ok=True)
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, out / MODEL_FILE)
    write_manifest(
        out, kind="double", name="double", files=[MODEL_FILE], inputs=INPUTS, outputs=OUTPUTS
    )
    return {"out": str(out)}


class Doubler(ServedModel[Hashable]):
    """Rows of one float each in, each doubled out, one ONNX Runtime call per batch."""

    def __init__(self, folder: Path, settings: RuntimeSettings, *, verify: bool = True) -> None:
        self.manifest = load_manifest(folder, kind="double", verify=verify)
        self.session = OnnxSession(
            self.manifest.path(MODEL_FILE),
            settings,
            expected_inputs=self.manifest.inputs,
            expected_outputs=self.manifest.outputs,
        )

    @property
    def provider(self) -> str:
        return self.session.provider

    def run_batch(self, rows: list[Any], key: Hashable, /) -> Sequence[Any]:
        x = np.array(rows, dtype=np.float32).reshape(-1, 1)
        return [float(v) for v in self.session.run({"x": x})["y"][:, 0]]
