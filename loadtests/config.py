"""What a load test may do: the profiles, their hard caps, the loopback rule, and the mix
and SLO files. No locust here (importing locust monkey-patches the process with gevent),
so the runner and the tests can import it."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
MIX_FILE = HERE / "mix.yaml"
SLO_FILE = HERE / "slo.yaml"
REPORTS_DIR = PROJECT_ROOT / "build" / "loadtests"

PROFILES = ("smoke", "mix", "ramp", "spike", "stress")
# The user families (one locust user class each), in the order reports list them.
FAMILIES = ("translation", "images", "gan", "oip_http", "oip_grpc")

# Hard caps, whatever the options say: a load test here is a bounded experiment, never a
# soak or a flood.
HARD_MAX_USERS = 64
HARD_MAX_SECONDS = 1800  # 30 minutes of load, every profile
HARD_MAX_REQUESTS = 500_000
SMOKE_MAX_SECONDS = 60
MAX_SPAWN_RATE = 50.0  # users started per second

# Environment variables the locustfile and the runner read.
ENV_KEY = "GENSERVE_LOADTEST_KEY"  # the API key, sent as Authorization: Bearer
ENV_PROFILE = "GENSERVE_LOADTEST_PROFILE"
ENV_GRPC = "GENSERVE_LOADTEST_GRPC"
ENV_ALLOW_REMOTE = "GENSERVE_LOADTEST_ALLOW_NON_LOOPBACK"

# A response the rate limiter gave on purpose is reported under its own name, this suffix
# added to the route's: it is neither an error nor part of the route's latency.
RATE_LIMITED_SUFFIX = " (429)"
# The request type of a timed sequence of requests (a job from submission to its result):
# its latency has an SLO, but it is not a request of its own in counts and ratios.
FLOW = "FLOW"


@dataclass(frozen=True)
class Defaults:
    """A profile's default size; options override, the hard caps bound."""

    units: int  # peak users in units of the mix (see mix_unit); stress: in users
    seconds: float  # the whole run (ramp, stress: each step)
    wait: str  # "between:a:b", "pace:tasks_per_s" or "none"


DEFAULTS: dict[str, Defaults] = {
    "smoke": Defaults(units=1, seconds=25, wait="between:0.1:0.5"),  # one user per family
    "mix": Defaults(units=1, seconds=120, wait="between:0.5:2"),
    "ramp": Defaults(units=5, seconds=20, wait="pace:0.25"),  # 1, 2, 3, 4, 5 units
    "spike": Defaults(units=4, seconds=60, wait="between:0.5:2"),  # 1 unit, 4, then 1
    "stress": Defaults(units=16, seconds=15, wait="none"),  # 1, 2, 4, 8, 16 users
}


def mix_unit(mix: dict[str, Any], family: str | None = None) -> int:
    """Users in one unit of the product mix: the sum of its user weights (4 translation +
    3 gan + 2 images + 1 + 1 OIP = 11), so that a whole unit runs every family in its
    share. One family alone: 1."""
    if family is not None:
        return 1
    return sum(w for w in mix["users"].values() if w > 0)


def host_of(address: str) -> str:
    """The host of a URL (``http://127.0.0.1:3000``) or a gRPC address (``[::1]:3001``)."""
    if "://" not in address:
        address = "//" + address
    host = urlsplit(address).hostname
    if not host:
        raise ValueError(f"no host in {address!r}")
    return host


def is_loopback(address: str) -> bool:
    """Whether every address the host resolves to is a loopback address."""
    host = host_of(address)
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def refuse_remote(addresses: list[str], allowed: bool) -> str | None:
    """Why the run must not start (a target that is not loopback), or None."""
    if allowed:
        return None
    remote = [a for a in addresses if a and not is_loopback(a)]
    if remote:
        return (
            f"refusing to load {', '.join(remote)}: not a loopback address. These tests "
            f"target this machine only; pass --allow-non-loopback (or {ENV_ALLOW_REMOTE}=1) "
            "to load a machine you own."
        )
    return None


def read_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top")
    return doc


def load_mix(path: Path = MIX_FILE) -> dict[str, Any]:
    """``users`` (family -> weight) and ``tasks`` (family -> task -> weight), checked."""
    doc = read_yaml(path)
    users = doc.get("users", {})
    tasks = doc.get("tasks", {})
    if not isinstance(users, dict) or not isinstance(tasks, dict):
        raise ValueError(f"{path}: users and tasks must be mappings")
    for family, weight in users.items():
        if family not in FAMILIES:
            raise ValueError(f"{path}: unknown family {family!r}; families: {FAMILIES}")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise ValueError(f"{path}: users.{family} must be an integer >= 0")
    if not any(users.values()):
        raise ValueError(f"{path}: every user weight is 0")
    for family, weights in tasks.items():
        if family not in FAMILIES or not isinstance(weights, dict):
            raise ValueError(f"{path}: tasks.{family} must be a family's task -> weight mapping")
        for name, weight in weights.items():
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                raise ValueError(f"{path}: tasks.{family}.{name} must be an integer >= 0")
    return {"users": users, "tasks": tasks}


def load_slo(profile: str, path: Path = SLO_FILE) -> dict[str, Any]:
    """The profile's SLOs: the file's ``default`` section with the profile's on top
    (``p95_ms`` merged route by route)."""
    doc = read_yaml(path)
    base = dict(doc.get("default") or {})
    over = dict((doc.get("profiles") or {}).get(profile) or {})
    p95 = {**(base.get("p95_ms") or {}), **(over.get("p95_ms") or {})}
    slo = {**base, **over, "p95_ms": p95}
    slo.setdefault("gate", "run")
    if slo["gate"] not in ("run", "first_step", "last_step"):
        raise ValueError(f"{path}: gate must be run, first_step or last_step")
    return slo


def bounded(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class Stage:
    """A stretch of a profile at a fixed number of users."""

    label: str
    users: int
    seconds: float
    spawn_rate: float
    families: tuple[str, ...] | None = None  # None: every family, by the mix's weights


def doubling(peak: int) -> list[int]:
    """1, 2, 4, ... up to ``peak`` (and ``peak`` itself last)."""
    out, users = [], 1
    while users < peak:
        out.append(users)
        users *= 2
    return [*out, peak]


def build_plan(
    profile: str,
    users: int | None = None,
    seconds: float | None = None,
    family: str | None = None,
    unit: int = 1,
) -> list[Stage]:
    """The profile's stages, within the hard caps. ``unit``: users in one unit of the mix
    (mix_unit); ``users`` (the peak) defaults to the profile's units of it.

    - smoke: one user per family (or of ``family``), ``seconds`` (at most 60);
    - mix: ``users`` (one unit) by the mix's weights for ``seconds``;
    - ramp: 1, 2, 3, ... units of paced users up to ``users``, ``seconds`` per step;
    - spike: one unit, a jump to ``users``, back to one unit; ``seconds`` in all (a quarter,
      a quarter, a half);
    - stress: one ``family`` (gan) at 1, 2, 4, ... ``users`` without think time, ``seconds``
      a step.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; profiles: {PROFILES}")
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {FAMILIES}")
    d = DEFAULTS[profile]
    unit = max(1, unit)
    peak = int(bounded(users or d.units * (1 if profile == "stress" else unit), 1, HARD_MAX_USERS))
    span = float(bounded(seconds or d.seconds, 1, HARD_MAX_SECONDS))
    only = (family,) if family else None
    stages: list[Stage]
    if profile == "smoke":
        every = only or FAMILIES
        span = min(span, SMOKE_MAX_SECONDS)
        stages = [Stage("smoke", len(every), span, float(len(every)), every)]
    elif profile == "mix":
        stages = [Stage("mix", peak, span, max(1.0, peak / 10), only)]
    elif profile == "ramp":
        steps = [unit * k for k in range(1, peak // unit + 1)] or [peak]
        stages = [Stage(f"{n} user{'s' * (n != 1)}", n, span, MAX_SPAWN_RATE, only) for n in steps]
    elif profile == "spike":
        base = unit if unit < peak else max(1, peak // 4)
        stages = [
            Stage("baseline", base, span / 4, MAX_SPAWN_RATE, only),
            Stage("spike", peak, span / 4, MAX_SPAWN_RATE, only),
            Stage("recovery", base, span / 2, MAX_SPAWN_RATE, only),
        ]
    else:  # stress
        chosen = family or "gan"
        stages = [
            Stage(f"{chosen} x{n}", n, span, MAX_SPAWN_RATE, (chosen,)) for n in doubling(peak)
        ]
    # The whole run within the cap: later stages are cut, then dropped.
    out, left = [], float(HARD_MAX_SECONDS if profile != "smoke" else SMOKE_MAX_SECONDS)
    for stage in stages:
        if left <= 0:
            break
        seconds_left = min(stage.seconds, left)
        out.append(Stage(stage.label, stage.users, seconds_left, stage.spawn_rate, stage.families))
        left -= stage.seconds
    return out


def plan_seconds(stages: list[Stage]) -> float:
    return sum(s.seconds for s in stages)


def stage_at(stages: list[Stage], elapsed: float) -> int | None:
    """The index of the stage running ``elapsed`` seconds in, None after the last."""
    end = 0.0
    for index, stage in enumerate(stages):
        end += stage.seconds
        if elapsed < end:
            return index
    return None
