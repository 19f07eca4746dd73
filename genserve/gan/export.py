"""``genserve models export gan``: committed safetensors weights -> verified ONNX folder.

The export fails (and leaves no ONNX file) if ONNX Runtime and PyTorch differ by
more than ``tolerance`` (max abs) on random latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest, write_manifest
from genserve.config import PROJECT_ROOT, RuntimeSettings
from genserve.errors import ExportError
from genserve.gan.sampler import MODEL_FILE
from genserve.gan.train import WEIGHTS_FILE

OPSET = 18


def _display(path: Path) -> str:
    """``path`` relative to the project where it lies inside it (no host paths in manifests)."""
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else path.name


def load_generator(weights_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The PyTorch generator from a verified weights folder (safetensors, never pickle)."""
    from safetensors.torch import load_file

    from genserve.gan.model import GanConfig, Generator

    manifest = load_manifest(weights_dir, kind="gan")
    g = Generator(GanConfig(**manifest.config))
    g.load_state_dict(load_file(str(manifest.path(WEIGHTS_FILE))))
    return g.eval(), manifest.to_dict()


def export(weights_dir: Path, out_dir: Path, *, tolerance: float = 1e-4) -> dict[str, Any]:
    """Export, check parity, write ``out_dir/genserve.json``. Returns the parity figures."""
    import torch

    from genserve.runtime import OnnxSession

    g, source = load_generator(weights_dir)
    cfg = source["config"]
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / MODEL_FILE
    z = torch.zeros(2, cfg["z_dim"])
    y = torch.zeros(2, cfg["num_classes"])
    rows = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        g,
        (z, y),
        str(onnx_path),
        input_names=["z", "class_weights"],
        output_names=["image"],
        dynamic_shapes={"z": {0: rows}, "y": {0: rows}},
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
    )
    session = OnnxSession(onnx_path, RuntimeSettings(providers="CPUExecutionProvider"))
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch in (1, 7, 64):
        zz = rng.standard_normal((batch, cfg["z_dim"])).astype(np.float32)
        yy = np.eye(cfg["num_classes"], dtype=np.float32)[rng.integers(0, 10, batch)]
        got = session.run({"z": zz, "class_weights": yy})["image"]
        with torch.no_grad():
            want = g(torch.from_numpy(zz), torch.from_numpy(yy)).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst <= tolerance:
        onnx_path.unlink()
        raise ExportError(
            f"ONNX Runtime and PyTorch differ by {worst:.3g} (max abs) > {tolerance:g}; "
            "the ONNX file was removed"
        )
    write_manifest(
        out_dir,
        kind="gan",
        name=source["name"],
        files=[MODEL_FILE],
        inputs=tuple(session.inputs.values()),
        outputs=tuple(session.outputs.values()),
        config=cfg,
        source={
            "format": "onnx",
            "weights": _display(weights_dir),
            "weights_sha256": source["files"][WEIGHTS_FILE]["sha256"],
            "opset": OPSET,
            "torch": torch.__version__,
            "parity_max_abs": worst,
        },
        recipe=source["recipe"],
    )
    return {"parity_max_abs": worst, "onnx": str(onnx_path)}
