"""The parity check the three exports share."""

from __future__ import annotations

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
