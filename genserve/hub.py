"""``genserve models pull KIND HUB_ID``: fetch a real checkpoint where network exists.

Only safetensors weights, configs and tokenizer files are fetched; a repository that
publishes its weights only as pickle (``pytorch_model.bin``) is refused. The pulled
folder gets a genserve.json manifest (hashes of what was fetched, the hub id and
revision), so export and serving verify it like any other model.
"""

from __future__ import annotations

from pathlib import Path

from genserve.artifacts import ALLOWED_SUFFIXES, write_manifest
from genserve.errors import InvalidInput, ModelIntegrityError

PATTERNS = {
    "translation": ["*.json", "*.spm", "model.safetensors"],
    "imagegen": [
        "model_index.json",
        "scheduler/*.json",
        "tokenizer/*",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ],
}
WEIGHTS = {
    "translation": "model.safetensors",
    "imagegen": "unet/diffusion_pytorch_model.safetensors",
}


def pull(kind: str, repo_id: str, out: Path, revision: str | None = None) -> Path:
    """Download ``repo_id`` into ``out`` and write its manifest. Needs network."""
    from huggingface_hub import snapshot_download

    if kind not in PATTERNS:
        raise InvalidInput(f"pulling {kind!r} models is not supported", field="kind")
    out.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo_id, revision=revision, local_dir=str(out), allow_patterns=PATTERNS[kind])
    if not (out / WEIGHTS[kind]).is_file():
        raise ModelIntegrityError(
            f"{repo_id} publishes no {WEIGHTS[kind]}; genserve loads no pickle weights"
        )
    files = sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file()
        and p.name.endswith(ALLOWED_SUFFIXES)
        and p.name != "genserve.json"
        and not p.relative_to(out).parts[0].startswith(".")  # the hub client's cache
    )
    write_manifest(
        out,
        kind=kind,
        name=repo_id.replace("/", "--"),
        files=files,
        source={"hub": repo_id, "revision": revision or "main"},
    )
    return out
