"""genserve's load test: one Locust user class per endpoint family, one load shape that
plays the chosen profile, SLOs checked at the end.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:3000 \\
        --load-profile smoke --grpc-host 127.0.0.1:3001

(``python -m loadtests`` runs this with the reports in place, and can start the stack.)

Families: translation, images, gan (REST ``/v1`` over kept-alive connections with Locust's
FastHttpUser), oip_http (``/v2`` through the unmodified ``tritonclient.http``) and oip_grpc
(the unmodified ``tritonclient.grpc``, timed here and reported as ``grpc`` requests).
Requests are named by route template and variant, so the statistics stay bounded. A 429
(gRPC RESOURCE_EXHAUSTED) is reported under the route's name + `` (429)``: the rate limiter
answered on purpose; it is neither an error nor part of the route's latency.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

# Before anything creates a gRPC object: make grpcio cooperate with gevent, on which Locust
# runs every user (otherwise one blocking gRPC call would stall every other user).
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import gevent  # noqa: E402
import numpy as np  # noqa: E402
import tritonclient.grpc as triton_grpc  # noqa: E402
import tritonclient.http as triton_http  # noqa: E402
from gevent import GreenletExit  # noqa: E402
from locust import (  # noqa: E402
    FastHttpUser,
    LoadTestShape,
    User,
    between,
    constant,
    constant_throughput,
    events,
    task,
)
from locust.env import Environment  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV  # noqa: E402
from tritonclient.utils import InferenceServerException, triton_to_np_dtype  # noqa: E402

if __package__ in (None, ""):  # run as a locustfile: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import config  # noqa: E402
from loadtests.config import FAMILIES, FLOW, RATE_LIMITED_SUFFIX, Stage  # noqa: E402
from loadtests.slo import RouteStats, Verdict, evaluate  # noqa: E402
from loadtests.steps import StepRecorder  # noqa: E402

log = logging.getLogger("genserve.loadtest")

# Request bodies: small, and from the demo models' world (a generated English-French corpus,
# coloured shapes, handwritten digits).
SENTENCES = (
    "I am a student.",
    "The cat sleeps.",
    "The cats did not eat the bread.",
    "The dog is in the garden.",
    "My sister reads a book.",
    "The children play in the park.",
    "We drink water.",
    "The animal didn't cross the street because it was too tired.",
    "The teacher opens the door.",
    "The bird sings in the tree.",
    "You have a red car.",
    "The woman buys apples at the market.",
)
PROMPTS = (
    "a small red circle at the top left on a blue background",
    "a large yellow triangle in the center on a black background",
    "a small green square at the bottom right on a white background",
    "a large blue circle in the center on a white background",
    "a small white triangle at the top right on a black background",
)
IMAGE_STEPS = 2  # the synchronous small image: few steps, 32x32
FRAMES_STEPS = 4
JOB_STEPS = 8
JOB_POLL_S = 0.2
JOB_DEADLINE_S = 60.0
RPC_TIMEOUT_S = 60.0


def seed() -> int:
    return random.randrange(2**32)


# -- options --------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--load-profile",
        choices=config.PROFILES,
        default="mix",
        env_var=config.ENV_PROFILE,
        help="genserve: the load profile (smoke, mix, ramp, spike, stress)",
    )
    parser.add_argument(
        "--grpc-host",
        default="",
        env_var=config.ENV_GRPC,
        help="genserve: the gateway's gRPC address (default: the --host's host, port + 1)",
    )
    parser.add_argument(
        "--family",
        choices=config.FAMILIES,
        default=None,
        help="genserve: stress this family (stress profile; default gan); ramp: only this one",
    )
    parser.add_argument(
        "--peak-users", type=int, default=0, help="genserve: peak users (profile's default)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=0,
        help="genserve: the run's length (ramp and stress: each step's); profile's default",
    )
    parser.add_argument(
        "--wait",
        default="",
        help="genserve: think time, between:MIN:MAX, pace:TASKS_PER_S or none (profile's)",
    )
    parser.add_argument("--mix-file", default=str(config.MIX_FILE), help="genserve: mix weights")
    parser.add_argument("--slo-file", default=str(config.SLO_FILE), help="genserve: the SLOs")
    parser.add_argument(
        "--report-dir", default="", help="genserve: steps, plot and verdict (build/loadtests/P)"
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        default=os.environ.get(config.ENV_ALLOW_REMOTE, "") in ("1", "true", "yes"),
        help="genserve: allow a target that is not on this machine",
    )


class Settings:
    """What the users read, set once at init."""

    profile = "mix"
    grpc = "127.0.0.1:3001"
    http_hostport = "127.0.0.1:3000"
    http_ssl = False
    headers: ClassVar[dict[str, str]] = {}
    plan: ClassVar[list[Stage]] = []
    slo: ClassVar[dict[str, Any]] = {}
    report_dir = config.REPORTS_DIR / "mix"
    verdict: Verdict | None = None
    summary = ""
    notes: ClassVar[list[str]] = []


RECORDER = StepRecorder()


def wait_function(spec: str) -> Callable[..., float]:
    kind, _, rest = spec.partition(":")
    if kind == "between":
        low, _, high = rest.partition(":")
        return between(float(low), float(high))
    if kind == "pace":
        return constant_throughput(float(rest))
    if kind == "none":
        return constant(0)
    raise ValueError(f"--wait {spec!r}: use between:MIN:MAX, pace:TASKS_PER_S or none")


# -- the users ------------------------------------------------------------------------------

T = TypeVar("T")


def to_the_end(send: Callable[[], T]) -> T:
    """``send()`` (one request, which fires its request event) carried to its end even if
    Locust stops the user meanwhile. At the end of a run Locust kills its users (every
    one at once; with ``--stop-timeout``, those in their think time), and gevent delivers
    a kill at the user's next switch, which may be in the middle of a request (a user
    whose think time has just run out may be sending by then). Killed mid-request, the
    request would reach the gateway, be served and counted there, and never be recorded
    here (a gRPC call is cancelled by the closing channel). So the request runs in a
    greenlet of its own; a kill waits for it (and its request event), then stops the
    user."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = send()
        except BaseException as exc:  # re-raised in the user's greenlet, as before
            outcome["error"] = exc

    worker = gevent.spawn(run)
    try:
        worker.join()
    except GreenletExit:
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])


def weighted(
    user: type[User], tasks: dict[str, Callable[..., None]], weights: dict[str, int]
) -> None:
    """Set a user class's tasks: ``tasks`` (name -> function) weighted by ``weights``; a
    task that ``weights`` does not name keeps its @task weight (or 1)."""
    unknown = set(weights) - set(tasks)
    if unknown:
        raise ValueError(
            f"mix: {user.__name__} has no tasks {sorted(unknown)}; tasks: {list(tasks)}"
        )
    chosen = {
        name: weights.get(name, getattr(fn, "locust_task_weight", 1)) for name, fn in tasks.items()
    }
    user.tasks = [tasks[name] for name, w in chosen.items() for _ in range(w)]
    if not user.tasks:
        raise ValueError(f"mix: every task weight of {user.__name__} is 0")


class RestUser(FastHttpUser):
    """REST ``/v1`` over one kept-alive connection per user."""

    abstract = True
    family: ClassVar[str] = ""
    network_timeout = RPC_TIMEOUT_S
    connection_timeout = 5.0

    def call(
        self, method: str, path: str, name: str, body: object = None
    ) -> tuple[int, Any] | None:
        """The response's status and JSON (None for a non-JSON body), or None when it
        failed (reported as a failure). A 429 is reported under ``name (429)``, not as a
        failure, and returned as ``(429, None)``."""
        return to_the_end(lambda: self._call(method, path, name, body))

    def _call(self, method: str, path: str, name: str, body: object) -> tuple[int, Any] | None:
        with self.client.request(
            method,
            path,
            json=body,
            headers=Settings.headers,
            name=name,
            catch_response=True,
        ) as resp:
            status = resp.status_code
            if status == 429:
                resp.request_meta["name"] = name + RATE_LIMITED_SUFFIX
                resp.success()
                return 429, None
            if not 200 <= status < 400:
                detail = resp.error if status == 0 else (resp.text or "")[:300]
                resp.failure(f"HTTP {status}: {detail}")
                return None
            data = None
            if resp.headers.get("content-type", "").startswith("application/json"):
                try:
                    data = resp.json()
                except ValueError:
                    resp.failure(f"HTTP {status}: the body is not JSON")
                    return None
            resp.success()
            return status, data


class TranslationUser(RestUser):
    family = "translation"

    @task(6)
    def one_text(self) -> None:
        self.call(
            "POST", "/v1/translate", "/v1/translate [1 text]", {"texts": [random.choice(SENTENCES)]}
        )

    @task(2)
    def eight_texts(self) -> None:
        texts = [random.choice(SENTENCES) for _ in range(8)]
        self.call("POST", "/v1/translate", "/v1/translate [8 texts]", {"texts": texts})

    @task(1)
    def attention(self) -> None:
        body = {"texts": [random.choice(SENTENCES)], "return_attention": True}
        self.call("POST", "/v1/translate", "/v1/translate [attention]", body)


class ImagesUser(RestUser):
    family = "images"

    @task(4)
    def small_image(self) -> None:
        body = {
            "prompt": random.choice(PROMPTS),
            "steps": IMAGE_STEPS,
            "width": 32,
            "height": 32,
            "seed": seed(),
            "format": "png",
        }
        self.call("POST", "/v1/images", f"/v1/images [{IMAGE_STEPS} steps png]", body)

    @task(1)
    def frames_gif(self) -> None:
        body = {
            "prompt": random.choice(PROMPTS),
            "steps": FRAMES_STEPS,
            "seed": seed(),
            "frames": "gif",
        }
        self.call("POST", "/v1/images", "/v1/images [frames gif]", body)

    @task(1)
    def job(self) -> None:
        """Submit, poll until succeeded, fetch the result; the whole is a FLOW entry. A 429
        along the way is waited out (until the job's deadline), as a client would."""
        started = time.perf_counter()
        deadline = started + JOB_DEADLINE_S
        body = {"prompt": random.choice(PROMPTS), "steps": JOB_STEPS, "seed": seed()}
        submitted = self.call("POST", "/v1/jobs", "/v1/jobs", body)
        if submitted is None or submitted[0] == 429:
            return  # a failure (reported) or rate limited: no job, no flow
        job_id = (submitted[1] or {}).get("id")
        if not job_id:
            self.flow(started, "the job's answer has no id")
            return
        outcome: str | None = None
        while outcome is None and time.perf_counter() < deadline:
            gevent.sleep(JOB_POLL_S)
            answer = self.call("GET", f"/v1/jobs/{job_id}", "/v1/jobs/{job_id}")
            if answer is not None and answer[0] != 429:
                status = (answer[1] or {}).get("status")
                if status in ("succeeded", "failed", "cancelled"):
                    outcome = status
        if outcome is None:
            self.call("DELETE", f"/v1/jobs/{job_id}", "/v1/jobs/{job_id}")
            self.flow(started, f"not done in {JOB_DEADLINE_S:g}s")
            return
        if outcome != "succeeded":
            self.flow(started, f"the job {outcome}")
            return
        while True:
            got = self.call("GET", f"/v1/jobs/{job_id}/result", "/v1/jobs/{job_id}/result")
            if got is None:
                self.flow(started, "its result failed")
                return
            if got[0] != 429:
                self.flow(started, None)
                return
            if time.perf_counter() >= deadline:
                self.flow(started, f"its result rate limited past {JOB_DEADLINE_S:g}s")
                return
            gevent.sleep(JOB_POLL_S)

    def flow(self, started: float, error: str | None) -> None:
        self.environment.events.request.fire(
            request_type=FLOW,
            name="/v1/jobs [submit to result]",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=RuntimeError(error) if error else None,
            context={},
        )


class GanUser(RestUser):
    family = "gan"

    @task(4)
    def samples(self) -> None:
        body = {"n": 8, "seed": seed(), "digit": random.randrange(10)}
        self.call("POST", "/v1/samples", "/v1/samples [8 json]", body)

    @task(1)
    def interpolate(self) -> None:
        body = {"seed_a": seed(), "seed_b": seed(), "frames": 16, "format": "gif"}
        self.call("POST", "/v1/interpolate", "/v1/interpolate [16 frames gif]", body)


def oip_examples() -> dict[str, tuple[tuple[str, str, np.ndarray], ...]]:
    """Each model kind's example request (genserve.kinds), as numpy inputs, by model."""
    from genserve import kinds

    out = {}
    for kind in kinds.kinds():
        if kind.example is None:
            continue
        inputs = []
        for name, datatype, values in kind.example.inputs:
            dtype = triton_to_np_dtype(datatype)
            data = np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=dtype)
            inputs.append((name, datatype, data))
        out[kind.name] = tuple(inputs)
    return out


EXAMPLES: dict[str, tuple[tuple[str, str, np.ndarray], ...]] = {}
PARAMETERS: dict[str, dict[str, Any]] = {}


class OipUser(User):
    """The Open Inference Protocol v2 through the unmodified tritonclient; each task is one
    model's example inference or its metadata, timed here and fired as a request event."""

    abstract = True
    family: ClassVar[str] = ""
    request_type: ClassVar[str] = ""  # Locust's "Type" column for inferences
    metadata_type: ClassVar[str] = ""  # and for metadata calls
    module: ClassVar[Any] = None  # tritonclient.http or tritonclient.grpc

    def names(self, model: str, metadata: bool) -> str:
        raise NotImplementedError

    def connect(self) -> Any:
        raise NotImplementedError

    def on_start(self) -> None:
        self.client = self.connect()

    def on_stop(self) -> None:
        self.client.close()

    def timed(self, name: str, request_type: str, call: Callable[[], Any]) -> None:
        to_the_end(lambda: self._timed(name, request_type, call))

    def _timed(self, name: str, request_type: str, call: Callable[[], Any]) -> None:
        started = time.perf_counter()
        exception: BaseException | None = None
        length = 0
        try:
            length = call()
        except InferenceServerException as exc:
            if str(exc.status()) in ("429", "StatusCode.RESOURCE_EXHAUSTED"):
                name += RATE_LIMITED_SUFFIX
            else:  # tritonclient's exception prints empty in Locust's failure table
                exception = RuntimeError(f"{exc.status()}: {exc.message()}")
        except Exception as exc:  # the connection, a timeout: a failure, not a crash
            exception = exc
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    def infer(self, model: str) -> None:
        inputs = []
        for name, datatype, data in EXAMPLES[model]:
            tensor = self.module.InferInput(name, list(data.shape), datatype)
            tensor.set_data_from_numpy(data)
            inputs.append(tensor)

        def call() -> int:
            result = self.client.infer(
                model,
                inputs,
                parameters=PARAMETERS.get(model) or None,
                headers=dict(Settings.headers),
                **self.infer_options(),
            )
            return self.result_bytes(result)

        self.timed(self.names(model, False), self.request_type, call)

    def metadata(self) -> None:
        model = random.choice(list(EXAMPLES))

        def call() -> int:
            meta = self.client.get_model_metadata(model, headers=dict(Settings.headers))
            return len(str(meta))

        self.timed(self.names(model, True), self.metadata_type, call)

    def infer_options(self) -> dict[str, Any]:
        return {}

    def result_bytes(self, result: Any) -> int:
        raise NotImplementedError


def infer_task(model: str) -> Callable[[OipUser], None]:
    def run(user: OipUser) -> None:
        user.infer(model)

    run.__name__ = f"infer_{model}"
    return run


class OipHttpUser(OipUser):
    family = "oip_http"
    request_type = "POST"
    metadata_type = "GET"
    module = triton_http

    def names(self, model: str, metadata: bool) -> str:
        return f"/v2/models/{model}" if metadata else f"/v2/models/{model}/infer"

    def connect(self) -> Any:
        return triton_http.InferenceServerClient(
            Settings.http_hostport,
            ssl=Settings.http_ssl,
            concurrency=1,
            connection_timeout=5.0,
            network_timeout=RPC_TIMEOUT_S,
        )

    def result_bytes(self, result: Any) -> int:
        outputs = result.get_response().get("outputs", [])
        return sum(getattr(result.as_numpy(o["name"]), "nbytes", 0) for o in outputs)


class OipGrpcUser(OipUser):
    family = "oip_grpc"
    request_type = "grpc"
    metadata_type = "grpc"
    module = triton_grpc

    def names(self, model: str, metadata: bool) -> str:
        return f"ModelMetadata [{model}]" if metadata else f"ModelInfer [{model}]"

    def connect(self) -> Any:
        return triton_grpc.InferenceServerClient(Settings.grpc)

    def infer_options(self) -> dict[str, Any]:
        return {"client_timeout": RPC_TIMEOUT_S}

    def result_bytes(self, result: Any) -> int:
        return sum(len(b) for b in result.get_response().raw_output_contents)


USERS: dict[str, type[User]] = {
    "translation": TranslationUser,
    "images": ImagesUser,
    "gan": GanUser,
    "oip_http": OipHttpUser,
    "oip_grpc": OipGrpcUser,
}
assert tuple(USERS) == FAMILIES


# -- the shape --------------------------------------------------------------------------------


class GenserveProfile(LoadTestShape):
    """Plays ``Settings.plan`` stage by stage; stops at its end, or at the hard caps."""

    def __init__(self) -> None:
        super().__init__()
        self.stage_index = -1

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        now = time.perf_counter()
        elapsed = self.get_run_time()
        runner = self.runner
        total = runner.stats.total.num_requests if runner is not None else 0
        if elapsed >= config.HARD_MAX_SECONDS or total >= config.HARD_MAX_REQUESTS:
            Settings.notes.append(f"stopped at a hard cap ({elapsed:.0f}s, {total} requests)")
            RECORDER.finish(now)
            return None
        index = config.stage_at(Settings.plan, elapsed)
        if index is None:
            RECORDER.finish(now)
            return None
        stage = Settings.plan[index]
        if index != self.stage_index:
            self.stage_index = index
            RECORDER.begin(stage.label, stage.users, now)
            log.info("stage %s: %d users for %.0fs", stage.label, stage.users, stage.seconds)
        families = stage.families or tuple(f for f in FAMILIES if USERS[f].weight > 0)
        return stage.users, stage.spawn_rate, [USERS[f] for f in families]


# -- set-up, step recording and the verdict ----------------------------------------------------


@events.init.add_listener
def _init(environment: Environment, **_kwargs: Any) -> None:
    opts = environment.parsed_options
    if opts is None:  # used as a library
        return
    host = environment.host or ""
    if not host:
        sys.exit("genserve load test: --host http://127.0.0.1:3000 (the gateway) is required")
    split = urlsplit(host)
    Settings.http_hostport = split.netloc
    Settings.http_ssl = split.scheme == "https"
    Settings.grpc = opts.grpc_host or f"{split.hostname}:{(split.port or 80) + 1}"
    why = config.refuse_remote([host, Settings.grpc], opts.allow_non_loopback)
    if why:
        sys.exit(f"genserve load test: {why}")

    Settings.profile = opts.load_profile
    key = os.environ.get(config.ENV_KEY, "")
    Settings.headers = {"authorization": f"Bearer {key}"} if key else {}
    Settings.report_dir = Path(opts.report_dir or config.REPORTS_DIR / Settings.profile)
    Settings.slo = config.load_slo(Settings.profile, Path(opts.slo_file))
    mix = config.load_mix(Path(opts.mix_file))
    unit = config.mix_unit(mix, opts.family)
    Settings.plan = config.build_plan(
        Settings.profile, opts.peak_users or None, opts.seconds or None, opts.family, unit
    )
    wait = wait_function(opts.wait or config.DEFAULTS[Settings.profile].wait)

    EXAMPLES.update(oip_examples())
    from genserve import kinds

    PARAMETERS.update({k.name: dict(k.example.parameters) for k in kinds.kinds() if k.example})
    # A family a stage names (smoke: all; stress, --family: one) runs whatever its weight.
    named = {f for stage in Settings.plan for f in stage.families or ()}
    for family, user in USERS.items():
        weight = 1 if Settings.profile == "smoke" else mix["users"].get(family, 0)
        user.weight = max(weight, 1) if family in named else weight
        user.wait_time = wait
        if issubclass(user, OipUser):
            tasks = {model: infer_task(model) for model in EXAMPLES}
            tasks["metadata"] = OipUser.metadata
        else:
            tasks = {
                name: fn
                for name, fn in vars(user).items()
                if callable(fn) and hasattr(fn, "locust_task_weight")
            }
        weighted(user, tasks, mix["tasks"].get(family, {}))
    total = config.plan_seconds(Settings.plan)
    stages = ", ".join(f"{s.label} ({s.users}u, {s.seconds:.0f}s)" for s in Settings.plan)
    log.info(
        "profile %s, %.0fs: %s; target %s, gRPC %s",
        Settings.profile,
        total,
        stages,
        host,
        Settings.grpc,
    )


@events.request.add_listener
def _record(
    request_type: str, name: str, response_time: float, exception: BaseException | None, **_kw: Any
) -> None:
    RECORDER.record(request_type, name, response_time, exception is not None, time.perf_counter())


def run_rows(environment: Environment) -> list[RouteStats]:
    rows = []
    for entry in environment.stats.entries.values():
        done = entry.num_requests - entry.num_none_requests
        p95 = entry.get_response_time_percentile(0.95) if done > 0 else None
        rows.append(
            RouteStats(entry.method or "", entry.name, entry.num_requests, entry.num_failures, p95)
        )
    return rows


@events.quitting.add_listener
def _verdict(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    try:
        judge(environment)
    except Exception:  # a bug here must fail the run, not pass it
        log.exception("genserve load test: the SLO evaluation failed")
        environment.process_exit_code = 1


def judge(environment: Environment) -> None:
    """Steps (stepped profiles: table, capacity, plot), the SLO verdict and the exit code."""
    now = time.perf_counter()
    RECORDER.finish(now)
    folder = Settings.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    stepped = Settings.profile in ("ramp", "spike", "stress")
    if stepped:
        rows = RECORDER.summaries(now)
        for step, row in zip(RECORDER.steps, rows, strict=True):
            judged = evaluate(Settings.slo, step.rows())
            row["slo_met"] = judged.ok and row["requests"] > 0
            row["breaches"] = "; ".join(judged.breaches)
        RECORDER.write(folder, rows)
        lines.append(step_table(rows))
        lines.extend(f"  {r['step']}: {r['breaches']}" for r in rows if r["breaches"])
        if Settings.profile != "spike":
            lines.append(capacity_line(rows))
        from loadtests.plot import plot_steps

        title = f"genserve {Settings.profile}: latency and errors against offered rate"
        png = plot_steps(rows, folder / f"{Settings.profile}.png", title)
        if png:
            lines.append(f"plot: {png}")

    gate = Settings.slo["gate"]
    if gate == "run" or not RECORDER.steps:
        verdict = evaluate(Settings.slo, run_rows(environment))
        title = f"{Settings.profile} (whole run)"
    else:
        step = RECORDER.steps[0 if gate == "first_step" else -1]
        verdict = evaluate(Settings.slo, step.rows())
        title = f"{Settings.profile} ({gate.replace('_', ' ')}: {step.label})"
    Settings.verdict = verdict
    lines.append(verdict.report(title))
    code = 0 if verdict.ok else 1
    runner = environment.runner
    if runner is not None and runner.exceptions:
        count = sum(e["count"] for e in runner.exceptions.values())
        lines.append(
            f"FAIL the load generator raised {count} unexpected exceptions (see the report)"
        )
        code = 1
    lines.extend(Settings.notes)
    write_final_csv(environment)
    write_response_times(environment, folder / "response_times.json")
    environment.process_exit_code = code
    Settings.summary = "\n".join(lines)
    (folder / "verdict.txt").write_text(Settings.summary + "\n")


def write_final_csv(environment: Environment) -> None:
    """Locust's ``--csv`` files of statistics and failures, written again from the final
    statistics. Locust rewrites them once a second while it runs and not at the end
    (locustio/locust#1806, #2299), so they miss the requests of the run's last second,
    which its HTML report, its printed summary and the verdict here count. Same writer,
    same format; Locust's own writer, if it ticks once more, writes the same rows."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for suffix, write in (
        ("_stats.csv", writer.requests_csv),
        ("_failures.csv", writer.failures_csv),
    ):
        with open(f"{prefix}{suffix}", "w", newline="") as f:
            write(csv.writer(f))


def write_response_times(environment: Environment, path: Path) -> None:
    """Each request name's response times as Locust holds them ({ms, rounded by Locust:
    count}, the data its percentiles come from), so that percentiles over several names
    (every name of one gateway route) are computed as Locust would: its CSV has them per
    name only. Read, not reset (``--json-file`` would reset the statistics)."""
    rows = [
        {
            "type": entry.method or "",
            "name": entry.name,
            "num_requests": entry.num_requests,
            "num_failures": entry.num_failures,
            "num_none_requests": entry.num_none_requests,
            "response_times": {str(ms): n for ms, n in sorted(entry.response_times.items())},
        }
        for entry in environment.stats.entries.values()
    ]
    path.write_text(json.dumps(rows, indent=1) + "\n")


@events.quit.add_listener
def _print_verdict(exit_code: int, **_kwargs: Any) -> None:
    """After Locust's own final tables: the steps and the verdict, last on the screen."""
    if Settings.verdict is not None:
        print("\n" + Settings.summary, flush=True)
        print(f"reports: {Settings.report_dir} (exit code {exit_code})", flush=True)


def capacity_line(rows: list[dict[str, Any]]) -> str:
    """The last step of the unbroken run of steps, from the first, that met the SLOs."""
    last = None
    for row in rows:
        if not row["slo_met"]:
            break
        last = row
    if last is None:
        return "capacity within the SLOs: none (the first step breaches them)"
    more = "" if last is rows[-1] else " (the next step breaches them)"
    return (
        f"capacity within the SLOs: {last['step']}, {last['offered_rps']:.1f} requests/s "
        f"offered{more}" + ("" if more else "; every step met them: raise --users to find it")
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def step_table(rows: list[dict[str, Any]]) -> str:
    out = [
        f"{'step':<18}{'users':>6}{'offered/s':>10}{'ok/s':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'errors':>8}{'429s':>6}  SLOs"
    ]
    for r in rows:
        out.append(
            f"{r['step']:<18}{r['users']:>6}{r['offered_rps']:>10.1f}{r['ok_rps']:>8.1f}"
            f"{_ms(r['p50_ms']):>8}{_ms(r['p95_ms']):>8}{_ms(r['p99_ms']):>8}"
            f"{r['error_ratio']:>8.1%}{r['rate_limited']:>6}"
            f"  {'met' if r['slo_met'] else 'BREACHED'}"
        )
    return "\n".join(out)
