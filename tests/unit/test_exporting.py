"""The parity check the three exports share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genserve.config import PROJECT_ROOT
from genserve.errors import ExportError
from genserve.exporting import ParityCheck, display_path


def test_a_name_keeps_its_largest_difference_and_check_returns_the_worst() -> None:
    parity = ParityCheck(tolerance=0.5)
    a = np.zeros((2, 3), np.float32)
    assert parity.compare("image", a, a + 0.1) == pytest.approx(0.1)
    parity.compare("image", a, a - 0.3)
    parity.compare("image", a, a + 0.2)
    parity.compare("logits", a, a)
    assert parity.diffs == {"image": pytest.approx(0.3), "logits": 0.0}
    assert parity.check(on_failure="nothing was removed") == pytest.approx(0.3)


def test_a_miss_names_the_tensor_the_tolerance_and_what_the_export_did() -> None:
    parity = ParityCheck(tolerance=1e-4)
    a = np.ones(4, np.float32)
    parity.compare("encoder cross_keys", a, a)
    parity.compare("decoder logits at step 2", a, a + 0.01)
    with pytest.raises(ExportError, match="differ by") as info:
        parity.check(on_failure="the ONNX files were removed")
    message = info.value.message
    assert "decoder logits at step 2" in message and "0.0001" in message
    assert message.endswith("the ONNX files were removed")


def test_nan_is_never_within_tolerance() -> None:
    parity = ParityCheck(tolerance=1.0)
    a = np.zeros(3, np.float32)
    parity.compare("big", a, a + 0.5)
    parity.compare("nan", a, np.array([0.0, np.nan, 0.0], np.float32))
    parity.compare("nan", a, a)  # a later clean comparison does not hide the NaN
    assert np.isnan(parity.worst)
    with pytest.raises(ExportError, match="on nan"):
        parity.check(on_failure="removed")


def test_shapes_must_match_exactly() -> None:
    parity = ParityCheck(tolerance=1.0)
    with pytest.raises(ExportError, match=r"image of shape \[2, 1\]"):
        parity.compare("image", np.zeros((2, 1)), np.zeros((2,)))  # would broadcast


def test_display_path_never_records_a_host_path(tmp_path) -> None:
    assert display_path(PROJECT_ROOT / "models" / "gan") == "models/gan"
    assert display_path(tmp_path / "weights") == "weights"


def test_the_makefile_builds_every_kinds_int8_folder() -> None:
    """``make models`` builds <kind>-int8 for exactly the kinds whose ModelKind offers
    int8 (the Makefile cannot read the registry before the venv exists)."""
    import re

    from genserve import kinds
    from genserve.config import PROJECT_ROOT
    from genserve.exporting import PRECISIONS

    makefile = (PROJECT_ROOT / "Makefile").read_text()
    listed = re.search(r"^PRECISION_MODELS := (.*)$", makefile, re.M)
    assert listed is not None
    offered = {f"{k.name}-{p}" for k in kinds.kinds() for p in k.precisions if p != "fp32"}
    assert set(listed.group(1).split()) == offered
    assert offered >= {"translation-int8", "imagegen-int8", "imagegen-fp16"}
    assert all(set(k.precisions) <= set(PRECISIONS) for k in kinds.kinds())


def _matmul_graph(folder: Path, w: np.ndarray) -> Path:
    """A graph of one MatMul, ``x (n, K) @ w``, saved as ``folder / "m.onnx"``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
        [numpy_helper.from_array(w, "w")],
    )
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_int8_products_do_not_saturate_where_inputs_and_weights_share_a_sign(tmp_path) -> None:
    """Large positive activations (after ReLU, SiLU) against large weights of one sign:
    the pairs of products that AVX2's unsigned-by-signed kernels add in 16 bits
    (``VPMADDUBSW``) clip at 32,767 with full-range int8 weights; the export's 7-bit
    weights keep every pair within it. On a CPU with VNNI this holds either way."""
    from genserve.config import RuntimeSettings
    from genserve.exporting import quantize_int8
    from genserve.runtime import OnnxSession

    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 1.0, size=(64, 16)).astype(np.float32)
    w[:, 8:] *= -1  # both signs, each column one
    path = _matmul_graph(tmp_path, w)
    quantize_int8(path)
    x = rng.uniform(0.5, 1.0, size=(4, 64)).astype(np.float32)
    y = OnnxSession(path, RuntimeSettings(providers="CPUExecutionProvider")).run({"x": x})["y"]
    exact = x @ w
    assert np.abs(y - exact).max() / np.abs(exact).max() < 0.02


@pytest.mark.parametrize("external", [False, True])
def test_int8_rewrites_matmul_weights_and_keeps_the_graphs_interface(tmp_path, external) -> None:
    import onnx
    from onnx import TensorProto

    from genserve.config import RuntimeSettings
    from genserve.exporting import quantize_int8
    from genserve.runtime import OnnxSession

    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    path = _matmul_graph(tmp_path, w)
    recorded = quantize_int8(path, external=external)
    assert (tmp_path / "m.onnx.data").is_file() == external
    quantized = onnx.load(str(path))
    assert any(t.data_type == TensorProto.INT8 for t in quantized.graph.initializer)
    assert not any(
        t.name == "w" and t.data_type == TensorProto.FLOAT for t in quantized.graph.initializer
    )
    assert recorded["weights"] == "int8 per channel, 7-bit range"
    # Rows of very different sizes: with one scale per batch, the small rows' int8 values
    # (and their results) would depend on the large one beside them.
    x = rng.normal(size=(8, 64)).astype(np.float32) * np.array([[1], [1], [100], *[[1]] * 5])
    x = x.astype(np.float32)
    session = OnnxSession(path, RuntimeSettings(providers="CPUExecutionProvider"))
    y = session.run({"x": x})["y"]
    exact = x @ w
    assert y.shape == (8, 32)
    rel = np.abs(y - exact).max(axis=1) / np.abs(exact).max(axis=1)
    assert rel.max() < 0.05  # int8: every row close to float32, the small ones too
    assert np.abs(y - exact).max() > 0  # and really quantized
    alone = np.concatenate([session.run({"x": x[i : i + 1]})["y"] for i in range(len(x))])
    assert np.array_equal(alone, y)  # a row's result does not depend on its batch
    assert recorded["activations"] == "uint8 per row" and recorded["quantized_inputs"] == 1
