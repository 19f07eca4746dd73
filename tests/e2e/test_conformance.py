"""Hostile input and protocol conformance through the real gateway: every malformed
inference-protocol request is a 400 (INVALID_ARGUMENT over gRPC) naming the field, never
a 500; compressed requests (tritonclient's options) work and a zip bomb is a 413; the
gRPC port answers grpc.health.v1.Health and server reflection without a key, kept current
with the model services' readiness."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.e2e.conftest import Server, free_port, gateway_env

pytestmark = pytest.mark.e2e

INFERENCE = "inference.GRPCInferenceService"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
HEADER = "inference-header-content-length"


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def infer_http(
    gw: Server, model: str, body: bytes, key: str, headers: list[tuple[bytes, bytes]] = ()
) -> httpx.Response:
    """A raw POST to /v2/models/<model>/infer: the body and headers exactly as given."""
    return httpx.post(
        f"{gw.url}/v2/models/{model}/infer",
        content=body,
        headers=[
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            *headers,
        ],
        timeout=60,
    )


def refused(r: httpx.Response, status: int, field: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["field"] == field, body
    assert isinstance(body["error"], str) and body["request_id"]


def doc(*inputs: dict, **extra: object) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


SEED = {"name": "SEED", "datatype": "INT64", "shape": [1], "data": [3]}
TEXT = {"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["Hello."]}


# -- HTTP: malformed requests are 400 naming the field ------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("²".encode("latin-1"), "a superscript: str.isdigit, not a number"),
        ("١٢".encode(), "Arabic-Indic digits, as UTF-8 bytes"),
        ("¹³".encode("latin-1"), "superscripts again"),
        (b"9" * 5000, "more digits than int() reads"),
        (b"-1", "negative"),
        (b"0x10", "hexadecimal"),
    ],
)
def test_http_header_length_that_is_not_ascii_digits_is_400(
    gateway: Server, api_keys: dict[str, str], value: bytes, why: str
) -> None:
    body = doc(SEED)
    r = infer_http(gateway, "gan", body, api_keys["full"], [(HEADER.encode(), value)])
    refused(r, 400, HEADER)


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        # JSON can spell half a surrogate pair; UTF-8 cannot encode it
        (
            "translation",
            b'{"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], '
            b'"data": ["\\ud800"]}]}',
            "inputs[0].data",
        ),
        (
            "translation",
            doc(TEXT)[:-1] + b', "parameters": {"\\udfff": 1}}',
            "parameters",
        ),
        ("translation", doc(TEXT)[:-1] + b', "id": "a\\udc80"}', "id"),
        # a zero beside a huge dimension: no elements, yet no array either
        ("gan", doc({**SEED, "shape": [0, 1 << 62], "data": []}), "inputs[0].shape"),
        ("gan", doc({**SEED, "shape": [0, 10**30], "data": []}), "inputs[0].shape"),
        ("gan", doc({**SEED, "shape": [1] * 40}), "inputs[0].shape"),
        # integers are integers: not 1.5, not "7", not true
        ("gan", doc({**SEED, "data": [1.5]}), "inputs[0].data"),
        ("gan", doc({**SEED, "data": ["7"]}), "inputs[0].data"),
        ("gan", doc({**SEED, "data": [True]}), "inputs[0].data"),
        ("translation", doc({**TEXT, "data": [7]}), "inputs[0].data"),
        # parameters alike: no bool where a number belongs
        ("gan", doc(SEED, parameters={"truncation": True}), "parameters.truncation"),
        ("gan", doc(SEED, parameters={"truncation": "0.5"}), "parameters.truncation"),
        (
            "imagegen",
            doc({**TEXT, "name": "PROMPT"}, parameters={"steps": 6.0}),
            "parameters.steps",
        ),
        ("gan", doc(SEED, parameters={"binary_data_output": 1}), "parameters.binary_data_output"),
        ("gan", doc(SEED, id={"a": 1}), "id"),
    ],
)
def test_http_malformed_json_is_400_naming_the_field(
    gateway: Server, api_keys: dict[str, str], model: str, body: bytes, field: str
) -> None:
    refused(infer_http(gateway, model, body, api_keys["full"]), 400, field)


def test_http_binary_tensor_with_a_zero_beside_a_huge_dimension_is_400(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    seed = {"name": "SEED", "datatype": "INT64", "shape": [0, 1 << 62]}
    head = doc({**seed, "parameters": {"binary_data_size": 0}})
    r = infer_http(gateway, "gan", head, api_keys["full"], [(HEADER.encode(), b"%d" % len(head))])
    refused(r, 400, "inputs[0].shape")


# -- gRPC: the same requests, INVALID_ARGUMENT naming the field ---------------------------


@pytest.fixture(scope="module")
def stub(gateway: Server) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(gateway.grpc) as channel:  # type: ignore[attr-defined]
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _grpc_request(model: str, *inputs: dict, raw: list[bytes] | None = None, **params):
    msg = service_pb2.ModelInferRequest(model_name=model)
    for spec in inputs:
        t = msg.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        for field, values in spec.get("contents", {}).items():
            getattr(t.contents, field).extend(values)
    msg.raw_input_contents.extend(raw or [])
    for key, (choice, value) in params.items():
        setattr(msg.parameters[key], choice, value)
    return msg


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        (
            _grpc_request("gan", {"name": "SEED", "datatype": "INT64", "shape": [0, 1 << 62]}),
            "inputs[0].shape",
        ),
        (
            _grpc_request(
                "gan", {"name": "SEED", "datatype": "INT64", "shape": [0, 1 << 62]}, raw=[b""]
            ),
            "inputs[0].shape",
        ),
        (
            _grpc_request(
                "gan", {"name": "SEED", "datatype": "INT64", "shape": [(1 << 63) - 1, 0]}, raw=[b""]
            ),
            "inputs[0].shape",
        ),
        (  # a bool cannot pass for an INT64 seed, raw or in contents
            _grpc_request("gan", {"name": "SEED", "datatype": "BOOL", "shape": [1]}, raw=[b"\x01"]),
            "inputs[0].datatype",
        ),
        (
            _grpc_request(
                "gan",
                {
                    "name": "SEED",
                    "datatype": "BOOL",
                    "shape": [1],
                    "contents": {"bool_contents": [True]},
                },
            ),
            "inputs[0].datatype",
        ),
        (
            _grpc_request("gan", {"name": "SEED", "datatype": "BOOL", "shape": [1]}, raw=[b"\x07"]),
            "inputs[0].data",
        ),
        (
            _grpc_request(
                "gan",
                {
                    "name": "SEED",
                    "datatype": "INT64",
                    "shape": [1],
                    "contents": {"int64_contents": [1]},
                },
                raw=[np.int64(1).tobytes()],
            ),
            "inputs[0].contents",
        ),
        (
            _grpc_request(
                "gan",
                {"name": "SEED", "datatype": "INT64", "shape": [1]},
                raw=[np.int64(1).tobytes()],
                truncation=("bool_param", True),
            ),
            "parameters.truncation",
        ),
        (
            _grpc_request(
                "imagegen",
                {"name": "PROMPT", "datatype": "BYTES", "shape": [1]},
                raw=[b"\x02\x00\x00\x00hi"],
                steps=("double_param", 6.0),
            ),
            "parameters.steps",
        ),
        (
            _grpc_request(
                "imagegen",
                {"name": "PROMPT", "datatype": "BYTES", "shape": [1]},
                raw=[b"\x02\x00\x00\x00\xff\xfe"],
            ),
            "inputs.PROMPT[0]",
        ),
    ],
)
def test_grpc_malformed_requests_are_invalid_argument_naming_the_field(
    stub, api_keys: dict[str, str], msg, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(msg, metadata=[("authorization", f"Bearer {api_keys['full']}")])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().endswith(f"(field: {field})"), info.value.details()


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("/inference.GRPCInferenceService/ModelInfer", b"\xff\xff\xff"),
        ("/inference.GRPCInferenceService/ModelInfer", b"\x0a\x02\xff\xfe"),  # not UTF-8
        ("/inference.GRPCInferenceService/ModelMetadata", b"\x0a\x02\xff\xfe"),
        ("/inference.GRPCInferenceService/ServerLive", b"\x08"),
        ("/grpc.health.v1.Health/Check", b"\x0a\x02\xff\xfe"),
    ],
)
def test_grpc_bytes_that_are_no_message_are_invalid_argument(
    gateway: Server, api_keys: dict[str, str], method: str, raw: bytes
) -> None:
    with grpc.insecure_channel(gateway.grpc) as channel:  # type: ignore[attr-defined]
        call = channel.unary_unary(
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        with pytest.raises(grpc.RpcError) as info:
            call(raw, timeout=10, metadata=[("authorization", f"Bearer {api_keys['full']}")])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "DecodeError" not in info.value.details()


# -- compression: tritonclient's options, bombs, unknown and corrupt codings --------------


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_http_request_compression(
    gateway: Server, api_keys: dict[str, str], algorithm: str
) -> None:
    client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
    headers = auth(api_keys["full"])

    def sample(**options: str):
        seeds = triton_http.InferInput("SEED", [2], "INT64")
        seeds.set_data_from_numpy(np.array([4, 5], dtype=np.int64))
        return client.infer("gan", [seeds], headers=headers, **options).as_numpy("IMAGE")

    plain = sample()
    packed = sample(request_compression_algorithm=algorithm, response_compression_algorithm="gzip")
    assert packed.shape == (2, 32, 32, 3) and np.array_equal(packed, plain)
    text = triton_http.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"I am a student."], dtype=object))
    result = client.infer(
        "translation", [text], headers=headers, request_compression_algorithm=algorithm
    )
    assert result.as_numpy("TRANSLATION")[0] == "Je suis étudiant.".encode()


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_grpc_compression(
    gateway: Server, api_keys: dict[str, str], algorithm: str
) -> None:
    client = triton_grpc.InferenceServerClient(gateway.grpc)  # type: ignore[attr-defined]
    seeds = triton_grpc.InferInput("SEED", [2], "INT64")
    seeds.set_data_from_numpy(np.array([4, 5], dtype=np.int64))
    headers = auth(api_keys["full"])
    plain = client.infer("gan", [seeds], headers=headers).as_numpy("IMAGE")
    packed = client.infer("gan", [seeds], headers=headers, compression_algorithm=algorithm)
    assert np.array_equal(packed.as_numpy("IMAGE"), plain)
    # A message that inflates past the limit is refused like one sent that large.
    text = triton_grpc.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"x" * 2_000_000], dtype=object))
    with pytest.raises(triton_grpc.InferenceServerException, match="RESOURCE_EXHAUSTED"):
        client.infer("translation", [text], headers=headers, compression_algorithm=algorithm)


def _bomb(megabytes: int) -> bytes:
    z = zlib.compressobj(9, wbits=31)
    zeros = bytes(1 << 20)
    return b"".join(z.compress(zeros) for _ in range(megabytes)) + z.flush()


def test_http_zip_bomb_is_413_and_codings_are_checked(
    gateway: Server, gan_server: Server, api_keys: dict[str, str]
) -> None:
    key = api_keys["full"]
    bomb = _bomb(48)  # 48 MiB of zeros in about 48 KB, under the 64 KiB body limit
    assert len(bomb) < 64 * 1024
    gz = [(b"content-encoding", b"gzip")]
    refused(infer_http(gateway, "gan", bomb, key, gz), 413, "body")
    for server, path in ((gateway, "/v1/samples"), (gan_server, "/v1/samples")):
        r = httpx.post(
            server.url + path,
            content=bomb,
            headers={"content-type": "application/json", "content-encoding": "gzip", **auth(key)},
        )
        assert r.status_code == 413 and r.json()["error"]["field"] == "body", r.text
    # An unknown coding is 415, a corrupt stream 400.
    br = [(b"content-encoding", b"br")]
    refused(infer_http(gateway, "gan", doc(SEED), key, br), 415, "content-encoding")
    refused(infer_http(gateway, "gan", b"\x1f\x8bnot really", key, gz), 400, "body")
    cut = gzip.compress(doc(SEED))[:-6]
    refused(infer_http(gateway, "gan", cut, key, gz), 400, "body")


def test_rest_bodies_may_be_compressed_at_the_gateway_and_every_service(
    gateway: Server, gan_server: Server, api_keys: dict[str, str]
) -> None:
    body = json.dumps({"seed": 3, "n": 2, "digit": 5}).encode()
    key = api_keys["full"]
    plain = httpx.post(
        gateway.url + "/v1/samples",
        content=body,
        headers={"content-type": "application/json", **auth(key)},
    )
    assert plain.status_code == 200
    for server in (gateway, gan_server):
        for coding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
            r = httpx.post(
                server.url + "/v1/samples",
                content=packed,
                headers={
                    "content-type": "application/json",
                    "content-encoding": coding,
                    **auth(key),
                },
            )
            assert r.status_code == 200, (server.url, coding, r.text)
            assert r.json() == plain.json()


# -- gRPC health and reflection: no key, no rate limit ------------------------------------


def test_grpc_health_check_and_watch_need_no_key(gateway: Server) -> None:
    with grpc.insecure_channel(gateway.grpc) as channel:  # type: ignore[attr-defined]
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", INFERENCE):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        stream = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()
        unknown = health.Watch(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        unknown.cancel()


def _reflect(channel: grpc.Channel, *requests: reflection_pb2.ServerReflectionRequest) -> list:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=5))


def test_grpc_reflection_like_grpcurl(gateway: Server) -> None:
    with grpc.insecure_channel(gateway.grpc) as channel:  # type: ignore[attr-defined]
        listed, found = _reflect(
            channel,
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=INFERENCE),
        )
    names = {s.name for s in listed.list_services_response.service}
    assert {INFERENCE, HEALTH, REFLECTION} <= names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    services = {f"{f.package}.{s.name}": s for f in files for s in f.service}
    methods = {m.name for m in services[INFERENCE].method}
    assert {"ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ModelInfer"} <= methods


# -- readiness kept current: a gateway in front of services that come and go --------------


class Readiness:
    """A stand-in for every model service: /readyz answers 200 or 503, as told; anything
    else 503."""

    def __init__(self) -> None:
        self.ready = True
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 200 if outer.ready and self.path == "/readyz" else 503
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            do_POST = do_GET  # an inference call finds the service down: 503

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def flapping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A gateway (auth off, one request a minute per address) whose services are one
    Readiness stand-in."""
    services = Readiness()
    grpc_port = free_port()
    env = gateway_env(
        {"gan": services.url, "translation": services.url, "imagegen": services.url},
        grpc_port,
        GENSERVE_GATEWAY_AUTH="false",
        GENSERVE_GATEWAY_ANONYMOUS_RATE_PER_MINUTE="1",
        GENSERVE_GATEWAY_BURST="1",
    )
    logs: Path = tmp_path_factory.mktemp("flapping")
    gw = Server("services.gateway:Gateway", env, logs / "gw.log")
    yield {"gateway": gw, "services": services, "grpc": f"127.0.0.1:{grpc_port}"}
    gw.stop()
    services.close()


def _status(health: health_pb2_grpc.HealthStub, service: str = "") -> int:
    return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_grpc_health_follows_the_services_within_a_second(flapping: dict) -> None:
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    with grpc.insecure_channel(flapping["grpc"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 10
        while _status(health) != serving and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _status(health) == serving and _status(health, INFERENCE) == serving
        seen: list[tuple[float, int]] = []
        stream = health.Watch(health_pb2.HealthCheckRequest(service=INFERENCE), timeout=30)
        other = health.Watch(health_pb2.HealthCheckRequest(service=INFERENCE), timeout=30)
        next(other)
        other.cancel()  # one watcher leaving does not deafen the others

        def watch() -> None:
            try:
                for answer in stream:
                    seen.append((time.monotonic(), answer.status))
            except grpc.RpcError:
                pass

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for ready, want in ((False, not_serving), (True, serving)):
            time.sleep(0.3)
            flipped = time.monotonic()
            flapping["services"].ready = ready
            deadline = flipped + 5
            while not (seen and seen[-1][1] == want) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert seen and seen[-1][1] == want, seen
            assert seen[-1][0] - flipped < 2.0, seen[-1][0] - flipped  # probe 0.5 s + poll
            assert _status(health) == want
            ready_http = httpx.get(flapping["gateway"].url + "/v2/health/ready")
            assert ready_http.status_code == (200 if ready else 503)
        stream.cancel()
        watcher.join(5)
        assert [s for _, s in seen] == [serving, not_serving, serving]


def test_grpc_health_and_reflection_are_never_rate_limited(flapping: dict) -> None:
    with grpc.insecure_channel(flapping["grpc"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(40):
            _status(health)
            _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        # the same address's inference calls are: one a minute
        inference = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        msg = _grpc_request(
            "gan", {"name": "SEED", "datatype": "INT64", "shape": [1]}, raw=[b"\x00" * 8]
        )
        codes = []
        for _ in range(2):
            try:
                inference.ModelInfer(msg, timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
        assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED, codes
        assert _status(health) is not None
