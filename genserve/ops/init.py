"""``genserve init``: prepare the shared volumes of a container deployment, once.

- models: the image carries the models built from the committed weights; they are
  copied onto the models volume when it holds none (a volume that already has models,
  such as pulled hub checkpoints, is left alone);
- secrets: when no keys file exists, two API keys are made: ``admin`` (every model) and
  ``prometheus`` (the metrics scope). The keys file holds only their hashes; the
  prometheus key is written for Prometheus to read, and the admin key is printed once, to
  the init container's log (``docker compose logs init``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from genserve.artifacts import MANIFEST_NAME as MANIFEST


def seed_models(seed: Path, models: Path) -> list[str]:
    """Copy every model folder of ``seed`` into ``models`` if that has none; the names."""
    models.mkdir(parents=True, exist_ok=True)
    if any(p.is_dir() and (p / MANIFEST).is_file() for p in models.iterdir()):
        return []
    copied = []
    for folder in sorted(p for p in seed.iterdir() if (p / MANIFEST).is_file()):
        shutil.copytree(folder, models / folder.name)
        copied.append(folder.name)
    return copied


def make_keys(secrets: Path) -> str | None:
    """Create keys.json and metrics_key unless keys.json exists; the admin key, or None."""
    from genserve.keys import key_digest, new_key

    secrets.mkdir(parents=True, exist_ok=True)
    keys_file = secrets / "keys.json"
    if keys_file.exists():
        return None
    admin, prometheus = new_key(), new_key()
    entries = [
        {"name": "admin", "sha256": key_digest(admin), "scopes": ["*"]},
        {"name": "prometheus", "sha256": key_digest(prometheus), "scopes": ["metrics"]},
    ]
    metrics_key = secrets / "metrics_key"
    metrics_key.write_text(prometheus)
    metrics_key.chmod(0o644)  # Prometheus runs as another user; the volume is internal
    keys_file.write_text(json.dumps({"keys": entries}, indent=2))
    keys_file.chmod(0o644)
    return admin


def init(seed: Path, models: Path, secrets: Path | None) -> int:
    copied = seed_models(seed, models)
    print(f"models: copied {', '.join(copied)}" if copied else f"models: {models} already set")
    if secrets is None:
        return 0
    admin = make_keys(secrets)
    if admin is None:
        print(f"keys: {secrets / 'keys.json'} already exists")
    else:
        print(f"keys: made {secrets / 'keys.json'}; the admin API key (shown once): {admin}")
    return 0
