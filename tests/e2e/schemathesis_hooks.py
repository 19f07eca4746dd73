"""Schemathesis hooks for tests/e2e/test_schemathesis.py (tests/e2e/schemathesis.toml
names this file).

- Image generation at its schema's largest (1024x1024, 150 steps, 16 images) takes
  minutes on a CPU, or more memory than the machine has: a *valid* value above a small
  cap is lowered to the cap before the request is sent. The request stays valid and of
  the same kind; out-of-range values are sent as generated, to be refused. The published
  ranges are checked all the same: the gateway validates them before a service runs.
- The run queues jobs faster than one worker runs them, and the job store holds 32
  unfinished jobs before it answers 503 (by design, with Retry-After): each job the run
  queues is waited for before the next request.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import schemathesis

# The most a generated request may ask for in these fields.
SMALL = {"steps": 2, "n": 2, "width": 32, "height": 32, "frames": 8, "max_new_tokens": 16}
SIDES = {"width", "height"}
IMAGES = {"/v1/images", "/v1/jobs"}


def _lowered(name: str, value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool) or value <= SMALL[name]:
        return value
    if name in SIDES and (value % 8 or not 16 <= value <= 1024):
        return value  # invalid as sent: keep it so
    return SMALL[name]


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    for name in SMALL.keys() & body.keys():
        body[name] = _lowered(name, body[name])
    if case.operation.path in IMAGES:
        # Its default is 25 steps: a job of the default size would keep the job store
        # full (503 by design, 32 unfinished jobs) while the next requests arrive.
        body.setdefault("steps", SMALL["steps"])


@schemathesis.hook
def after_call(context: Any, case: schemathesis.Case, response: Any) -> None:
    if case.operation.path != "/v1/jobs" or response.status_code != 202:
        return
    request = response.request
    url = f"{str(request.url).removesuffix('/v1/jobs')}/v1/jobs/{response.json()['id']}"
    headers = {"authorization": request.headers.get("authorization", "")}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = httpx.get(url, headers=headers, timeout=10).json().get("status")
        if status not in ("queued", "running", "cancelling"):
            return
        time.sleep(0.02)
