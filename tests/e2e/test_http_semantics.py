"""HTTP semantics at the gateway and the model services: 405 with Allow for a method a
path does not have, WWW-Authenticate on a 401, an OpenAPI document that says what the
gateway answers, and malformed HTTP framing answered 400 by the server itself."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


# -- 405 ----------------------------------------------------------------------------------


def test_wrong_method_is_405_naming_every_method_of_the_path(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    key = auth(api_keys["full"])
    cases = [
        ("GET", "/v1/translate", "POST"),
        ("PUT", "/v1/translate", "POST"),  # no body, no content type: the method first
        ("POST", "/v1/jobs/abc", "DELETE, GET"),  # two routes, one path
        ("DELETE", "/v1/models", "GET"),
        ("GET", "/v2/models/gan/infer", "POST"),
        ("PATCH", "/v2/models/gan/versions/1", "GET"),
        ("POST", "/static/app.js", "GET, HEAD"),
        ("POST", "/livez", "GET, HEAD"),  # BentoML's own route, around the gateway's app
        # OPTIONS without a CORS preflight's headers is a method like any other.
        ("OPTIONS", "/v1/samples", "POST"),
    ]
    for method, path, allow in cases:
        r = httpx.request(method, gateway.url + path, headers=key)
        assert r.status_code == 405, (method, path, r.status_code, r.text)
        assert r.headers["allow"] == allow, (method, path)
        body = r.json()
        fields = body if path.startswith("/v2") else body["error"]
        assert fields["code"] == "method_not_allowed" and fields["field"] == "method"
        assert fields["request_id"] == r.headers["x-request-id"]
    for method in ("GET", "POST", "OPTIONS", "DELETE"):  # no such path, whatever the method
        r = httpx.request(method, gateway.url + "/v1/nowhere", headers=key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", method


def test_model_services_answer_405_with_allow(gan_server: Server, imagegen_server: Server) -> None:
    r = httpx.get(f"{gan_server.url}/v1/samples")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["field"] == "method"
    r = httpx.post(f"{imagegen_server.url}/v1/jobs/abc", json={})
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    r = httpx.put(f"{imagegen_server.url}/v1/images")  # before its missing content type
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# -- 401 ----------------------------------------------------------------------------------


def test_401_names_the_bearer_scheme(gateway: Server) -> None:
    for headers in ({}, {"authorization": "Basic abc"}, auth("gs_not-a-key")):
        r = httpx.get(gateway.url + "/v1/models", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="genserve"'
    r = httpx.get(gateway.url + "/v2/models/gan")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer ")


# -- the OpenAPI document -----------------------------------------------------------------


def test_openapi_document_declares_what_the_gateway_answers(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    r = httpx.get(gateway.url + "/openapi.json", headers=auth(api_keys["full"]))
    assert r.status_code == 200
    # The seed's bound exactly: 2**64-1, not the float 1.8446744073709552e+19 (= 2**64).
    assert '"maximum":18446744073709551615' in r.text.replace(" ", "")
    assert "e+19" not in r.text
    spec = r.json()
    paths = spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, item in paths.items():
        for method, op in item.items():
            assert "422" not in op["responses"], (method, path)
            public = path in ("/v2/health/live", "/v2/health/ready")
            assert ("security" in op) is not public, (method, path)
            error = "ProtocolError" if path.startswith("/v2") else "Error"
            for status, answer in op["responses"].items():
                if int(status) >= 400 and not public:
                    assert error in json.dumps(answer["content"]), (method, path, status)
    samples = paths["/v1/samples"]["post"]["responses"]
    assert set(samples) == {"200", "400", "401", "403", "408", "413", "415", "429", "503", "504"}
    assert set(samples["200"]["content"]) == {"application/json", "image/png"}
    assert samples["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert set(paths["/v1/interpolate"]["post"]["responses"]["200"]["content"]) == {
        "application/json",
        "image/gif",
        "image/png",
    }
    images = {"application/json", "image/png", "image/jpeg"}
    assert set(paths["/v1/images"]["post"]["responses"]["200"]["content"]) == images
    result = paths["/v1/jobs/{job_id}/result"]["get"]["responses"]
    assert set(result["200"]["content"]) == images and "409" in result and "404" in result
    assert "202" in paths["/v1/jobs/{job_id}"]["delete"]["responses"]
    links = paths["/v1/jobs"]["post"]["responses"]["202"]["links"]
    assert {link["parameters"]["job_id"] for link in links.values()} == {"$response.body#/id"}
    assert set(paths["/v1/models"]["get"]["responses"]) == {"200", "401", "429", "503"}
    infer = paths["/v2/models/{name}/infer"]["post"]
    body = infer["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
    assert "application/octet-stream" in body
    assert set(infer["responses"]["200"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    assert {"400", "404", "413", "415", "504"} <= set(infer["responses"])
    name = next(p for p in infer["parameters"] if p["name"] == "name")
    assert name["schema"]["enum"] == ["gan", "translation", "imagegen"]
    assert httpx.get(gateway.url + "/docs", headers=auth(api_keys["full"])).status_code == 200


# -- malformed framing --------------------------------------------------------------------

MALFORMED = {
    "bad request line": b"GARBAGE\r\n\r\n",
    "unknown method": b"FOO /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in a header name": b"GET /livez HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
    "control byte in a header": b"GET /livez HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "NUL in the path": b"GET /li\x00vez HTTP/1.1\r\nHost: x\r\n\r\n",
    "two Content-Lengths": b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "Content-Length and chunked": b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "bad chunk size": b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "bytes past the Content-Length": b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}garbage",
}


def _exchange(server: Server, raw: bytes, *, half_close: bool = False) -> tuple[bytes, float]:
    """What the server sends back until it closes the connection (at most 10 s)."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


def test_malformed_framing_is_400_and_closed_by_the_server(
    gateway: Server, api_keys: dict[str, str]
) -> None:
    """Refused by uvicorn's parser before any genserve code runs: a plain-text 400 and the
    connection closed, at once; never a 5xx, never a hang, and the gateway serves on."""
    for name, raw in MALFORMED.items():
        answer, elapsed = _exchange(gateway, raw)  # recv returns b"" only once it closed
        assert answer.startswith(b"HTTP/1.1 400 "), (name, answer[:200])
        assert b"connection: close" in answer.lower(), name
        assert elapsed < 5, (name, elapsed)
    # A body shorter than its Content-Length: the server waits for the rest, as HTTP
    # says; when the client gives up, the server closes without an answer.
    key = f"Authorization: Bearer {api_keys['full']}\r\n".encode()
    short = b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n" + key
    short += b"Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{}"
    answer, elapsed = _exchange(gateway, short, half_close=True)
    assert answer == b"" and elapsed < 5
    assert httpx.get(gateway.url + "/livez").status_code == 200
