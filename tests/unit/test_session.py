from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from genserve.artifacts import TensorSpec
from genserve.config import RuntimeSettings
from genserve.errors import ConfigError, InvalidInput, ModelIntegrityError
from genserve.runtime import OnnxSession, choose_providers

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (["CUDAExecutionProvider", "CPUExecutionProvider"], ALL[1:]),
        (["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"], ALL),
        (["CPUExecutionProvider", "OpenVINOExecutionProvider"], ["CPUExecutionProvider"]),
    ],
)
def test_auto_prefers_tensorrt_then_cuda_then_cpu(
    available: list[str], expected: list[str]
) -> None:
    assert choose_providers("auto", available) == expected


def test_explicit_list_keeps_its_order() -> None:
    got = choose_providers("CPUExecutionProvider, CUDAExecutionProvider", ALL)
    assert got == ["CPUExecutionProvider", "CUDAExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider"], ALL) == ["CUDAExecutionProvider"]


def test_unavailable_provider_is_a_config_error_not_a_fallback() -> None:
    with pytest.raises(ConfigError, match="CUDAExecutionProvider"):
        choose_providers("CUDAExecutionProvider", ["CPUExecutionProvider"])
    with pytest.raises(ConfigError):
        choose_providers(" , ", ALL)


@pytest.fixture(scope="module")
def scale_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = x * 2 for x of shape (batch, 3) float32."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "g", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = tmp_path_factory.mktemp("onnx") / "scale.onnx"
    onnx.save(model, str(path))
    return path


def test_session_reads_interface_and_runs(scale_model: Path) -> None:
    s = OnnxSession(scale_model, RuntimeSettings(intra_op_threads=1))
    assert s.inputs == {"x": TensorSpec("x", "float32", (None, 3))}
    assert s.provider == "CPUExecutionProvider"
    out = s.run({"x": np.ones((5, 3), np.float32)})["y"]
    np.testing.assert_array_equal(out, np.full((5, 3), 2.0, np.float32))


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.ones((2, 3), np.float64)}, "must be float32"),
        ({"x": np.ones((2, 4), np.float32)}, "must have shape"),
        ({"x": np.ones(3, np.float32)}, "must have shape"),
        ({}, "missing input"),
        ({"x": np.ones((1, 3), np.float32), "extra": np.ones(1)}, "unknown input"),
    ],
)
def test_inputs_are_checked_against_the_model(scale_model: Path, feeds: dict, message: str) -> None:
    s = OnnxSession(scale_model, RuntimeSettings(warmup=False))
    with pytest.raises(InvalidInput, match=message) as info:
        s.run(feeds)
    assert info.value.field in {"x", "extra"}


def test_manifest_interface_must_match_the_file(scale_model: Path) -> None:
    wrong = (TensorSpec("x", "float32", (None, 4)),)
    with pytest.raises(ModelIntegrityError, match="differ from the manifest"):
        OnnxSession(scale_model, RuntimeSettings(), expected_inputs=wrong)


def test_graph_optimisation_and_threads_are_applied(scale_model: Path) -> None:
    s = OnnxSession(
        scale_model,
        RuntimeSettings(graph_optimization="disable", intra_op_threads=1, inter_op_threads=1),
    )
    opts = s._session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.graph_optimization_level.name == "ORT_DISABLE_ALL"


def test_io_binding_gives_the_same_results_and_keeps_only_read_only_inputs(
    scale_model: Path,
) -> None:
    plain = OnnxSession(scale_model, RuntimeSettings(warmup=False))
    bound = OnnxSession(scale_model, RuntimeSettings(warmup=False, io_binding=True))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(bound.run({"x": x})["y"], plain.run({"x": x})["y"])
    x += 1  # the same writeable array, changed: copied again, not served stale
    np.testing.assert_array_equal(bound.run({"x": x})["y"], x * 2)
    frozen = x.copy()
    frozen.flags.writeable = False
    first = bound.run({"x": frozen})["y"]
    kept = bound._binding._kept["x"][1]  # type: ignore[union-attr]
    assert bound.run({"x": frozen})["y"].tolist() == first.tolist()
    assert bound._binding._kept["x"][1] is kept  # type: ignore[union-attr]
