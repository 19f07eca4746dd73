"""The UNet's attention rewrite (genserve.imagegen.optimize) on graphs torch.onnx wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F

from genserve.imagegen.optimize import fuse_attention_file


class Attention(torch.nn.Module):
    """Multi-head attention as diffusers writes it: projections, heads, SDPA, merge."""

    def __init__(self, masked: bool = False) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(16, 16) for _ in range(4))
        self.masked = masked

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, 4, 4).transpose(1, 2)

        mask = (ctx[:, None, None, :, 0] > 0).expand(b, 4, x.shape[1], ctx.shape[1])
        y = F.scaled_dot_product_attention(
            heads(self.q(x)),
            heads(self.k(ctx)),
            heads(self.v(ctx)),
            attn_mask=mask if self.masked else None,
        )
        return self.o(y.transpose(1, 2).reshape(b, -1, 16))


def _export(module: torch.nn.Module, path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 6, 16), torch.randn(2, 5, 16)
    batch, s, t = torch.export.Dim("batch"), torch.export.Dim("s"), torch.export.Dim("t")
    torch.onnx.export(
        module.eval(),
        (x, ctx),
        str(path),
        input_names=["x", "ctx"],
        dynamic_shapes={"x": {0: batch, 1: s}, "ctx": {0: batch, 1: t}},
        opset_version=18,
        dynamo=True,
        external_data=False,
    )
    feeds = {"x": torch.randn(3, 9, 16).numpy(), "ctx": torch.randn(3, 7, 16).numpy()}
    with torch.no_grad():
        want = module(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["ctx"])).numpy()
    return feeds, want


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_attention_becomes_one_kernel_with_the_same_result(tmp_path: Path) -> None:
    path = tmp_path / "attn.onnx"
    feeds, want = _export(Attention(), path)
    assert fuse_attention_file(path) == 1
    ops = _ops(path)
    assert ops.count("MultiHeadAttention") == 1 and "Softmax" not in ops
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_pattern_it_does_not_know_is_left_as_exported(tmp_path: Path) -> None:
    path = tmp_path / "masked.onnx"
    feeds, want = _export(Attention(masked=True), path)
    before = _ops(path)
    assert fuse_attention_file(path) == 0
    assert _ops(path) == before
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_demo_unet_is_exported_with_every_attention_fused(imagegen_model_dir: Path) -> None:
    from diffusers import UNet2DConditionModel

    from tests.conftest import WEIGHTS_DIR

    unet = UNet2DConditionModel.from_pretrained(str(WEIGHTS_DIR / "imagegen" / "unet"))
    blocks = sum(1 for m in unet.modules() if type(m).__name__ == "BasicTransformerBlock")
    ops = _ops(imagegen_model_dir / "unet.onnx")
    assert ops.count("MultiHeadAttention") == 2 * blocks  # self- and cross-attention
    assert "Softmax" not in ops
