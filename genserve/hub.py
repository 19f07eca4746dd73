"""``genserve models pull KIND HUB_ID``: fetch a real checkpoint where network exists.

What is fetched of each kind is its ``ModelKind.pull`` (genserve.kinds).

Only safetensors weights, configs and tokenizer files are fetched; a repository that
publishes its weights only as pickle (``pytorch_model.bin``) is refused. The pulled
folder gets a genserve.json manifest (hashes of what was fetched, the hub id and
revision), so export and serving verify it like any other model.
"""

from __future__ import annotations

from pathlib import Path

from genserve import kinds
from genserve.artifacts import ALLOWED_SUFFIXES, write_manifest
from genserve.errors import InvalidInput, ModelIntegrityError


def pull(kind: str, repo_id: str, out: Path, revision: str | None = None) -> Path:
    """Download ``repo_id`` into ``out`` and write its manifest. Needs network."""
    from huggingface_hub import snapshot_download

    spec = kinds.get(kind, field="kind").pull
    if spec is None:
        raise InvalidInput(f"pulling {kind!r} models is not supported", field="kind")
    out.mkdir(parents=True, exist_ok=True)
    patterns = list(spec.patterns)
    snapshot_download(repo_id, revision=revision, local_dir=str(out), allow_patterns=patterns)
    if not (out / spec.weights).is_file():
        raise ModelIntegrityError(
            f"{repo_id} publishes no {spec.weights}; genserve loads no pickle weights"
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
