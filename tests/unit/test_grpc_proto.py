"""The committed gRPC modules match the .proto, and the .proto matches what tritonclient
speaks. Each check runs in its own interpreter: tritonclient and genserve both register
messages named inference.*, which one protobuf descriptor pool cannot hold twice."""

from __future__ import annotations

import json
import subprocess
import sys

from genserve.config import PROJECT_ROOT

FIELDS = """
import json, sys, importlib
mod = importlib.import_module(sys.argv[1])
out = {}
def walk(desc, prefix):
    for f in desc.fields:
        out[prefix + f.name] = [f.number, f.type, f.label]
        if f.message_type is not None and not f.message_type.GetOptions().map_entry:
            walk(f.message_type, prefix + f.name + ".")
for name, desc in mod.DESCRIPTOR.message_types_by_name.items():
    walk(desc, name + ".")
svc = mod.DESCRIPTOR.services_by_name["GRPCInferenceService"]
out["service"] = svc.full_name
out["methods"] = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in svc.methods}
print(json.dumps(out))
"""


def fields(module: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", FIELDS, module],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    return json.loads(out.stdout)


def test_every_message_and_call_is_wire_compatible_with_tritonclient() -> None:
    ours = fields("genserve.protocol.inference_pb2")
    theirs = fields("tritonclient.grpc.service_pb2")
    assert ours["service"] == theirs["service"] == "inference.GRPCInferenceService"
    for name, types in ours.pop("methods").items():
        assert theirs["methods"][name] == types, name
    assert len(ours) > 50
    for path, spec in ours.items():
        if path != "service":
            assert theirs.get(path) == spec, path


def test_generated_modules_are_up_to_date(tmp_path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "genserve/protocol/inference.proto",
        ],
        cwd=PROJECT_ROOT,
        check=True,
    )
    for name in ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py"):
        fresh = (tmp_path / "genserve" / "protocol" / name).read_text()
        committed = (PROJECT_ROOT / "genserve" / "protocol" / name).read_text()
        assert fresh == committed, f"{name} is stale: make protos"
