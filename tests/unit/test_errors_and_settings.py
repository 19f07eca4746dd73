from __future__ import annotations

import pytest
from pydantic import ValidationError

from genserve import kinds
from genserve.config import Settings
from genserve.errors import GenserveError, InvalidInput, ModelIntegrityError, Overloaded


def test_client_error_names_the_field() -> None:
    body = InvalidInput("n must be in [1, 64]", field="n").to_dict("rid")
    assert body == {
        "error": {
            "code": "invalid_input",
            "message": "n must be in [1, 64]",
            "field": "n",
            "request_id": "rid",
        }
    }


def test_server_error_says_only_the_request_id() -> None:
    body = ModelIntegrityError("/secret/path/model.onnx changed").to_dict("rid")["error"]
    assert "/secret" not in body["message"] and body["request_id"] == "rid"
    assert body["code"] == "model_integrity"


def test_every_error_class_has_a_distinct_code_and_valid_statuses() -> None:
    classes = [GenserveError, *_subclasses(GenserveError)]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for c in classes:
        assert 400 <= c.http_status < 600 and c.grpc_code.isupper()


def _subclasses(cls: type) -> list[type]:
    return [s for c in cls.__subclasses__() for s in (c, *_subclasses(c))]


def test_overloaded_carries_retry_after() -> None:
    exc = Overloaded("full", retry_after_s=2)
    assert exc.http_status == 503 and exc.retry_after_s == 2


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSERVE_GAN_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("GENSERVE_RUNTIME_PROVIDERS", "CPUExecutionProvider")
    s = Settings()
    gan = kinds.get("gan").settings()
    assert gan.max_batch_size == 8 and s.runtime.providers == "CPUExecutionProvider"


def test_settings_reject_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSERVE_GAN_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="max_batch_size"):
        kinds.get("gan").settings()


def test_an_error_survives_the_trip_through_a_service() -> None:
    import json as _json

    from genserve.errors import Overloaded, RateLimited, from_wire
    from services.wire import error_response

    for exc in (InvalidInput("steps: too many", field="steps"), Overloaded("full")):
        body = _json.loads(error_response(exc).body)
        back = from_wire(exc.http_status, body, exc.retry_after_s)
        assert type(back) is type(exc) and back.field == exc.field
        assert back.retry_after_s == exc.retry_after_s
    unknown = from_wire(502, {"oops": 1})
    assert type(unknown).__name__ == "GenserveError" and unknown.http_status == 500
    # Under /v2 the protocol's shape: "error" is the message string.
    body = _json.loads(error_response(RateLimited("slow down"), "/v2/models/gan/infer").body)
    assert body["error"] == "slow down" and body["code"] == "rate_limited"
    assert "request_id" in body


def test_errors_that_are_not_genserve_shaped_map_by_status() -> None:
    from genserve.errors import BackendUnavailable, GatewayTimeout, RateLimited, from_wire
    from services.wire import retry_after

    assert type(from_wire(504, {"error": "Not able to process the request in 60 seconds"})) is (
        GatewayTimeout
    )
    assert type(from_wire(503, {})) is BackendUnavailable
    assert type(from_wire(429, {"error": "busy"})) is RateLimited
    unknown_4xx = from_wire(418, {})
    assert unknown_4xx.is_client_error and unknown_4xx.http_status == 400
    assert retry_after(1.35) == "2" and retry_after(0.1) == "1" and retry_after(3.0) == "3"


def test_an_unexpected_error_is_a_500_with_the_request_id() -> None:
    from fastapi.testclient import TestClient

    from services.wire import Limits, create_app

    app = create_app("t", "t", Limits())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    r = TestClient(app, raise_server_exceptions=False).get(
        "/boom", headers={"x-request-id": "find-me-7"}
    )
    assert r.status_code == 500 and r.headers["x-request-id"] == "find-me-7"
    body = r.json()["error"]
    assert body["request_id"] == "find-me-7" and "secret" not in r.text
