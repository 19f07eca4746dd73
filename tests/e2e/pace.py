"""How slowly this host runs the models now, against a day the load tests' SLOs hold on.

The smoke profile's SLO p95s (loadtests/slo.yaml) are mostly model time: a two-step image,
a 25-step job, beam searches. The shared 2-core host this project is tested on has run
whole days several times slower than on others with no change in the code (2026-12-04:
every model call 4.5-7x its time of 2026-12-02, BENCHMARKS.md), and a limit in fixed
milliseconds then fails CI for the host. Speed is judged in benchmarks, side by side; the
smoke test judges the stack's behaviour under load, so it scales its limits by how much
slower than a reference pace the models run here now.

The measure is each model service's own mean model call (its stage histogram, the time
inside ONNX Runtime, no HTTP, no queue) over two seconds of its example request at
concurrency 1 (wrk), over a reference call time; the factor is the geometric mean over
the models, never below 1 (a faster host keeps the limits as written). Load behaviour
(queues, starvation, head-of-line blocking) is not in a lone model call, so a regression
there still breaches the scaled limits.

The reference: the limits were set at twice the worst p95 of runs on a loaded machine. On
2026-12-04 the session's services took (medians of four measurements) gan 2.7, translation
40 and imagegen 150 ms a call, while the smoke's p95s ran up to 1.25x their limits (images
and jobs; everything else within). The reference is that day's call over 2.5 (its worst
excess, 1.25, times the limits' designed margin, 2), so that on such a day the limits keep
their margin of 2. (On 2026-12-02 the models ran about 5x faster than on 2026-12-04:
`python -m loadtests.concurrency`, BENCHMARKS.md; there the factor is 1.)
"""

from __future__ import annotations

import math

from genserve import kinds
from loadtests.concurrency import alone
from tests.e2e.conftest import Server

# Mean model call, ms, of each kind's example request in the session's services: 2026-12-04
# (gan 2.7, translation 40, imagegen 150) over 2.5, as above.
REFERENCE_MODEL_CALL_MS = {"gan": 1.1, "translation": 16.0, "imagegen": 60.0}


def model_call_ms(server: Server, kind: str, seconds: int = 2) -> float:
    alone(server.url, kinds.get(kind), 1)  # warm (wrk takes whole seconds)
    _run, ms = alone(server.url, kinds.get(kind), seconds)
    assert ms > 0, f"{kind}: no model call in {seconds} s"
    return ms


def slowness(services: dict[str, Server]) -> tuple[float, dict[str, float]]:
    """(the factor, each model's call in ms now)."""
    now = {kind: model_call_ms(services[kind], kind) for kind in REFERENCE_MODEL_CALL_MS}
    logs = [math.log(now[kind] / ref) for kind, ref in REFERENCE_MODEL_CALL_MS.items()]
    return max(1.0, math.exp(sum(logs) / len(logs))), now
