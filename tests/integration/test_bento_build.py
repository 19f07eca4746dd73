"""`bentoml build` makes a bento from bentofile.yaml, offline (no package locking), and
the bento carries what serving needs: every service's code, the generated gRPC modules,
the playground and the serving requirements (no torch)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from genserve.config import PROJECT_ROOT


def test_bento_builds_offline_and_serves_from_its_own_files(tmp_path) -> None:
    home = tmp_path / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home), "PIP_NO_INDEX": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", "--output", "tag"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tag = out.stdout.strip().rsplit("__tag__:", 1)[-1].strip()
    name, version = tag.split(":")
    bento = home / "bentos" / name / version
    assert name == "genserve" and bento.is_dir(), out.stdout
    src = bento / "src"
    for path in (
        "services/gateway.py",
        "services/gan.py",
        "services/translation.py",
        "services/imagegen.py",
        "genserve/protocol/inference_pb2_grpc.py",
        "services/playground/index.html",
        "services/playground/app.js",
    ):
        assert (src / path).is_file(), path
    assert not list(src.rglob("*.safetensors")) and not list(src.rglob("*.onnx"))
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and not re.search(r"^torch", requirements, re.M)
    assert "service: services.gateway:Gateway" in (bento / "bento.yaml").read_text()
    # Every service imports from the bento's files alone (not this checkout).
    code = "import services.gateway, services.gan, services.translation, services.imagegen\n"
    code += "import genserve; print(genserve.__file__); print(services.gateway.__file__)"
    check = subprocess.run(
        [sys.executable, "-c", code], cwd=src, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr[-2000:]
    for line in check.stdout.split():
        assert line.startswith(str(src)), line
