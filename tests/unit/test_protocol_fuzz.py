"""Property-based: any bytes, any header length, any protocol-shaped request into the
inference protocol's codec (HTTP and gRPC) and the data plane's model check and plan give
a genserve 4xx error naming a field, or a request; never another exception, never a 5xx.
Strategies and the gRPC half live in tests/unit/oip_fuzz.py."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from genserve.config import PROJECT_ROOT
from genserve.errors import GenserveError
from genserve.protocol.tensors import parse_header_length, parse_request
from tests.unit.oip_fuzz import (
    FUZZ,
    client_error,
    http_bodies,
    model_bodies,
    through_every_model,
)


def _parse(body: bytes, header: int | None) -> None:
    try:
        request = parse_request(body, header)
    except GenserveError as exc:
        client_error(exc)
        return
    through_every_model(request)


@FUZZ
@given(st.binary(max_size=512), st.none() | st.integers(-(2**70), 2**70))
def test_any_bytes_and_header_length(body: bytes, header: int | None) -> None:
    _parse(body, header)


@FUZZ
@given(http_bodies())
def test_protocol_shaped_json_and_binary(case: tuple[bytes, int | None]) -> None:
    _parse(*case)


@FUZZ
@given(model_bodies())
def test_requests_for_each_model(case: tuple[bytes, int | None]) -> None:
    _parse(*case)


@FUZZ
@given(st.none() | st.text(max_size=24) | st.from_regex(r"[0-9]{1,40}", fullmatch=True))
def test_any_header_value(value: str | None) -> None:
    try:
        length = parse_header_length(value)
    except GenserveError as exc:
        client_error(exc)
        return
    assert length is None or (length >= 0 and str(length) == value.lstrip("0").rjust(1, "0"))


def test_grpc_requests_in_a_process_of_their_own() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.unit.oip_fuzz"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-8000:]
