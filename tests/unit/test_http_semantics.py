"""The wire layer's HTTP semantics on a small app (services/wire.py create_app): 405 with
every method of the path in Allow, the method before the body, the errors' own headers,
and an OpenAPI document whose bounds are pydantic's exact numbers."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from genserve.errors import MethodNotAllowed, NotFound, Unauthenticated, from_wire
from services.wire import Limits, create_app, error_response


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    seed: int = Field(0, ge=0, le=2**64 - 1)
    scale: float = Field(1.0, gt=0.0, le=2.5, multiple_of=0.5)


def _app() -> FastAPI:
    app = create_app("test", "an app with genserve's wire layer", Limits())

    @app.get("/jobs/{job_id}")
    async def status(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    @app.delete("/jobs/{job_id}")
    async def cancel(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    @app.post("/things")
    async def things(body: Body) -> dict[str, int]:
        return {"seed": body.seed}

    return app


def test_wrong_method_is_405_naming_every_method_of_the_path() -> None:
    client = TestClient(_app())
    r = client.post("/jobs/7", json={})
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET"  # two routes; Starlette's own names one
    error = r.json()["error"]
    assert error["code"] == "method_not_allowed" and error["field"] == "method"
    assert "POST is not allowed" in error["message"]
    # The method comes before the body: no content type here would be a 415.
    r = client.put("/things", content=b"\x00")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.post("/nowhere", content=b"\x00")  # and the path before the body: 404
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.post("/things", content=b"{}").status_code == 415  # the right method


def test_errors_carry_their_own_headers() -> None:
    r = error_response(Unauthenticated("send a key", field="authorization"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="genserve"'
    r = error_response(MethodNotAllowed("no", allow=("GET", "POST")), "/v2/models/gan")
    assert r.headers["allow"] == "GET, POST"
    assert json.loads(r.body)["field"] == "method"  # the protocol's shape under /v2
    assert "allow" not in error_response(MethodNotAllowed("no")).headers
    assert "www-authenticate" not in error_response(NotFound("no")).headers
    # Rebuilt from a service's body (no __init__ run): still answerable.
    rebuilt = from_wire(405, {"error": {"code": "method_not_allowed", "message": "no"}})
    assert isinstance(rebuilt, MethodNotAllowed) and rebuilt.http_headers() == {}
    assert from_wire(401, {"error": {"code": "unauthenticated"}}).http_headers()


def test_openapi_bounds_are_the_exact_numbers() -> None:
    text = TestClient(_app()).get("/openapi.json").text
    # FastAPI's OpenAPI models hold bounds as floats: 2**64-1 became 1.8446744073709552e+19.
    assert '"maximum":18446744073709551615' in text
    assert "e+19" not in text
    seed = json.loads(text)["components"]["schemas"]["Body"]["properties"]["seed"]
    assert seed["maximum"] == 2**64 - 1 and type(seed["minimum"]) is int
    scale = json.loads(text)["components"]["schemas"]["Body"]["properties"]["scale"]
    assert scale == {**scale, "exclusiveMinimum": 0.0, "maximum": 2.5, "multipleOf": 0.5}
