"""``genserve models export gan``: committed safetensors weights -> verified ONNX folder.

The export fails (and leaves no ONNX file) if ONNX Runtime and PyTorch differ by
more than ``tolerance`` (max abs) on random latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest, write_manifest
from genserve.config import RuntimeSettings
from genserve.exporting import ParityCheck, display_path
from genserve.gan.sampler import MODEL_FILE
from genserve.gan.train import WEIGHTS_FILE
from genserve.runtime import OnnxSession

OPSET = 18


def load_generator(weights_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The PyTorch generator from a verified weights folder (safetensors, never pickle)."""
    from safetensors.torch import load_file

    from genserve.gan.modules import GanConfig, Generator

    manifest = load_manifest(weights_dir, kind="gan")
    g = Generator(GanConfig(**manifest.config))
    g.load_state_dict(load_file(str(manifest.path(WEIGHTS_FILE))))
    return g.eval(), manifest.to_dict()


def export(weights_dir: Path, out_dir: Path, *, tolerance: float = 1e-4) -> dict[str, Any]:
    """Export, check parity, write ``out_dir/genserve.json``. Returns the parity figures."""
    import torch

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
    try:
        session = OnnxSession(onnx_path, RuntimeSettings(providers="CPUExecutionProvider"))
        worst = _parity(g, session, cfg, tolerance)
    except Exception:
        onnx_path.unlink(missing_ok=True)
        raise
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
            "weights": display_path(weights_dir),
            "weights_sha256": source["files"][WEIGHTS_FILE]["sha256"],
            "opset": OPSET,
            "torch": torch.__version__,
            "parity_max_abs": worst,
        },
        recipe=source["recipe"],
    )
    return {"parity_max_abs": worst, "onnx": str(onnx_path)}


def _parity(g: Any, session: OnnxSession, cfg: dict[str, Any], tolerance: float) -> float:
    """ONNX Runtime against PyTorch on random latents and digits, at several batch sizes."""
    import torch

    parity = ParityCheck(tolerance)
    rng = np.random.default_rng(0)
    for batch in (1, 7, 64):
        z = rng.standard_normal((batch, cfg["z_dim"])).astype(np.float32)
        y = np.eye(cfg["num_classes"], dtype=np.float32)[rng.integers(0, cfg["num_classes"], batch)]
        got = session.run({"z": z, "class_weights": y})["image"]
        with torch.no_grad():
            want = g(torch.from_numpy(z), torch.from_numpy(y)).numpy()
        parity.compare("image", got, want)
    return parity.check(on_failure="the ONNX file was removed")
