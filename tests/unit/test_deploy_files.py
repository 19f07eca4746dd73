"""docker-compose against the Compose Specification's schema, the Kubernetes manifests
against the Kubernetes schemas (rendered the way kustomize renders them), and the rules
of the deployment that a schema cannot see. No Docker engine or cluster runs here."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
import yaml

from genserve import kinds
from genserve.config import PROJECT_ROOT
from services.backends import backend_settings

SCHEMA = PROJECT_ROOT.parent / "shared" / "schemas" / "compose-spec.json"
K8S = PROJECT_ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"
MODEL_SERVICES = tuple(kinds.names())


# -- docker-compose -------------------------------------------------------------------


def load_compose(name: str) -> dict[str, Any]:
    text = (PROJECT_ROOT / name).read_text()
    # Interpolation as compose does it with nothing set: ${VAR:-default} -> default.
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    assert "${" not in text, "every variable has a default"
    # Compose v1.29 (Debian 12's docker-compose) knows neither of these.
    assert not re.search(r"^[^#]*!(reset|override)\b", text, re.M), name
    doc = yaml.safe_load(text)
    assert "name" not in doc, f"{name}: Compose v1.29 refuses a top-level name"
    return doc


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for mappings (all these files use)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base.get(key), value)
        return out
    return copy.deepcopy(override)


def validate_compose(doc: dict[str, Any]) -> None:
    assert SCHEMA.is_file(), f"the Compose schema belongs beside the checkout: {SCHEMA}"
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(doc)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml: the CPU stack, what `make compose-test` runs."""
    doc = load_compose("docker-compose.yml")
    validate_compose(doc)
    return doc


@pytest.fixture(scope="module")
def compose_gpu(compose: dict[str, Any]) -> dict[str, Any]:
    override = load_compose("docker-compose.gpu.yml")
    validate_compose(override)  # the override on its own is a valid compose file too
    merged = merge(compose, override)
    validate_compose(merged)
    return merged


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match.group(1))


def test_compose_files_follow_the_compose_specification(compose, compose_gpu) -> None:
    assert set(compose["services"]) == {
        "init",
        "gan",
        "translation",
        "imagegen",
        "gateway",
        "prometheus",
        "grafana",
    }
    with pytest.raises(jsonschema.ValidationError):  # the schema does bite
        validate_compose(merge(compose, {"services": {"gan": {"restart": 3}}}))


def test_only_the_gateway_and_grafana_are_published(compose) -> None:
    published = {n for n, s in compose["services"].items() if s.get("ports")}
    assert published == {"gateway", "grafana"}
    assert compose["networks"]["internal"]["internal"] is True
    for name, service in compose["services"].items():
        networks = set(service["networks"])
        assert "internal" in networks, name
        assert ("edge" in networks) == (name in published), name


def test_health_order_restarts_and_grace(compose) -> None:
    services = compose["services"]
    for name in (*MODEL_SERVICES, "gateway", "prometheus", "grafana"):
        s = services[name]
        assert s["healthcheck"]["test"], name
        assert s["restart"] == "unless-stopped", name
        assert seconds(s["stop_grace_period"]) > 0, name
    for name in MODEL_SERVICES:
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    for name in MODEL_SERVICES:
        assert services["gateway"]["depends_on"][name]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # Grace above the longest request each service can be asked to finish.
    timeouts = {k.name: backend_settings(k).timeout_s for k in kinds.kinds()}
    assert seconds(services["gateway"]["stop_grace_period"]) > max(timeouts.values())
    for name, timeout in timeouts.items():
        assert seconds(services[name]["stop_grace_period"]) > timeout, name


def test_the_cpu_stack_and_the_gpu_variant(compose, compose_gpu) -> None:
    for name in MODEL_SERVICES:
        devices = compose_gpu["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
        assert "deploy" not in compose["services"][name]
    for name in ("init", *MODEL_SERVICES, "gateway"):
        assert compose["services"][name]["build"]["target"] == "cpu"
        assert compose["services"][name]["image"] == "genserve:cpu"
        assert compose_gpu["services"][name]["build"]["target"] == "gpu"
        assert compose_gpu["services"][name]["build"]["context"] == "."  # merged, not lost
        assert compose_gpu["services"][name]["image"] == "genserve:gpu"
        # tini as PID 1: SIGTERM reaches the server and a stop ends within the grace period
        assert compose["services"][name]["init"] is True, name
    assert "deploy" not in compose_gpu["services"]["gateway"]
    assert not (PROJECT_ROOT / "docker-compose.cpu.yml").exists(), "the CPU stack is the base"


def test_models_on_a_volume_and_every_mounted_file_exists(compose) -> None:
    assert "models" in compose["volumes"]
    for name in MODEL_SERVICES:
        assert "models:/models:ro" in compose["services"][name]["volumes"]
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), source
        build = service.get("build")
        if build:
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file()


def test_one_image_serves_every_service() -> None:
    dockerfile = (PROJECT_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, flags=re.M)
    assert {"build", "cpu", "gpu"} <= set(stages)
    gpu = dockerfile[dockerfile.index("AS gpu") :]
    assert "grep -v '^onnxruntime=='" in gpu and "-r requirements/gpu.txt" in gpu
    pins = (PROJECT_ROOT / "requirements" / "gpu.txt").read_text()
    assert re.search(r"^onnxruntime-gpu==\S+$", pins, re.M)
    assert re.search(r"^tensorrt-cu12==\S+$", pins, re.M)
    entry = (PROJECT_ROOT / "deploy" / "docker" / "entrypoint.sh").read_text()
    assert "gateway)" in entry and "services.gateway:Gateway" in entry
    # Any other name is a model kind, whose service the registry names.
    assert "python -m genserve.kinds service" in entry
    for kind in kinds.kinds():
        found = subprocess.run(
            [sys.executable, "-m", "genserve.kinds", "service", kind.name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert found.stdout.strip() == kind.service
        module, cls = kind.service.split(":")
        assert f"class {cls}" in (PROJECT_ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert "for kind in $(ls models)" in dockerfile  # every kind's model is built
    runtime = dockerfile[dockerfile.index("AS cpu") : dockerfile.index("AS gpu")]
    assert "dev.txt" not in runtime and "torch" not in runtime  # no torch when serving
    # torch for the build stage: the PyTorch CPU index by default, none where it cannot be
    # reached (an empty TORCH_INDEX_URL), and deploy/docker/wheels/ always looked at first.
    build = dockerfile[dockerfile.index("AS build") : dockerfile.index("AS cpu")]
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in build
    assert "${TORCH_INDEX_URL:+--extra-index-url" in build and "--find-links /wheels" in build
    assert "-r requirements/export.txt" in build
    assert (PROJECT_ROOT / "deploy" / "docker" / "wheels" / "README.md").is_file()
    export = (PROJECT_ROOT / "requirements" / "export.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", export, re.M), "torch is pinned"
    assert "-r export.txt" in (PROJECT_ROOT / "requirements" / "dev.txt").read_text()
    # The classic builder builds it (no BuildKit here): no RUN --mount, no heredocs.
    instructions = "\n".join(x for x in dockerfile.splitlines() if not x.startswith("#"))
    assert "--mount" not in instructions and "<<" not in instructions
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert "build" in ignored and "*.whl" not in ignored


# -- Kubernetes -------------------------------------------------------------------------

KNOWN = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}


def render(folder: Path) -> list[dict[str, Any]]:
    """kustomize build, for what these kustomizations use: resources (files and
    folders), namespace, images, and JSON 6902 patches from files with a target.
    Anything else fails here rather than being silently ignored."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(k) <= KNOWN, set(k) - KNOWN
    docs: list[dict[str, Any]] = []
    for resource in k.get("resources", []):
        path = folder / resource
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in k.get("patches", []):
        ops = yaml.safe_load((folder / patch["path"]).read_text())
        assert isinstance(ops, list), "JSON 6902 patches only"
        target = patch["target"]
        hits = [
            d
            for d in docs
            if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
        ]
        assert len(hits) == 1, patch
        hits[0].update(jsonpatch.apply_patch(hits[0], ops))
    for image in k.get("images", []):
        for d in docs:
            for c in _containers(d):
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in k:
        for d in docs:
            d["metadata"]["namespace"] = k["namespace"]
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@pytest.fixture(scope="module", params=["base", "overlays/gpu"])
def manifests(request) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(K8S / request.param)


def test_manifests_follow_the_kubernetes_schemas(manifests) -> None:
    _name, docs = manifests
    assert len(docs) >= 15
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    broken = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):  # the schemas do bite
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_probes_resources_autoscaling_and_budgets(manifests) -> None:
    name, docs = manifests
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for service in (*MODEL_SERVICES, "gateway"):
        deployment = by[("Deployment", service)]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, (service, probe)
        assert container["resources"]["requests"]["cpu"]
        assert container["image"] == f"genserve:{'gpu' if 'gpu' in name else 'cpu'}"
        assert ("Service", service) in by and ("PodDisruptionBudget", service) in by
        assert deployment["metadata"]["namespace"] == "genserve"
    for service in MODEL_SERVICES:
        hpa = by[("HorizontalPodAutoscaler", service)]
        assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "genserve_queue_rows"
        limits = by[("Deployment", service)]["spec"]["template"]["spec"]["containers"][0][
            "resources"
        ]["limits"]
        assert ("nvidia.com/gpu" in limits) == ("gpu" in name)
    gateway = by[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in gateway["resources"]["limits"]


# -- Grafana ----------------------------------------------------------------------------

GRAFANA = PROJECT_ROOT / "deploy" / "grafana"


def test_dashboards_use_the_provisioned_datasource_and_folder(compose) -> None:
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "genserve.yml").read_text()
    )["providers"][0]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    uids = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        uids.append(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for p in board["panels"]:
            assert p["datasource"]["uid"] == datasource["uid"], (path.name, p["title"])
            assert p["targets"] and all(
                t["datasource"]["uid"] == datasource["uid"] for t in p["targets"]
            )
    assert sorted(uids) == ["genserve-models", "genserve-overview", "genserve-resources"]


# -- the model kinds ----------------------------------------------------------------------


def test_every_deploy_file_covers_every_model_kind(compose, compose_gpu) -> None:
    """The deploy files are written by hand; this holds them to genserve.kinds: a new
    kind that is missing from one of them fails here, naming the file."""
    names = set(kinds.names())
    assert names == {p.name for p in (PROJECT_ROOT / "models").iterdir() if p.is_dir()}, (
        "models/ holds one folder of demo weights per kind"
    )
    gateway = compose["services"]["gateway"]
    for kind in kinds.kinds():
        service = compose["services"][kind.name]
        assert service["command"] == [kind.name], "docker-compose.yml"
        assert gateway["environment"][f"GENSERVE_GATEWAY_{kind.env_name}_URL"] == (
            f"http://{kind.name}:3000"
        ), "docker-compose.yml"
        assert kind.name in gateway["depends_on"], "docker-compose.yml"
        assert "deploy" in compose_gpu["services"][kind.name], "docker-compose.gpu.yml"
        assert float(service["cpus"]) >= 1, "docker-compose.yml: each model's core budget"
    prometheus = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    models_job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "genserve-models")
    scraped = {c["labels"]["service"] for c in models_job["static_configs"]}
    assert scraped == names, "deploy/prometheus/prometheus.yml"
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert {f"{n}.yaml" for n in names} <= set(base["resources"]), "k8s base"
    gpu = yaml.safe_load((K8S / "overlays" / "gpu" / "kustomization.yaml").read_text())
    patched = {p["target"]["name"] for p in gpu["patches"]}
    assert names <= patched, "k8s gpu overlay"
    for name in names:  # a CPU limit: the pod's core budget, which ONNX Runtime follows
        docs = list(yaml.safe_load_all((K8S / "base" / f"{name}.yaml").read_text()))
        deployment = next(d for d in docs if d and d["kind"] == "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["cpu"], f"k8s {name}.yaml"
    k8s_gateway = (K8S / "base" / "gateway.yaml").read_text()
    for kind in kinds.kinds():
        assert f"GENSERVE_GATEWAY_{kind.env_name}_URL" in k8s_gateway, "k8s gateway.yaml"


def _image_folders(dockerfile: str, target: str) -> set[str]:
    """The model folders an image target holds: every kind's float32 folder (the export
    loop) and each further ``--out`` of the build stage, the GPU ones for the gpu target."""
    outs = set(re.findall(r"--out /opt/genserve/models/([\w-]+)", dockerfile))
    if target == "gpu":
        outs |= set(re.findall(r"--out /opt/genserve/models-gpu/([\w-]+)", dockerfile))
    return set(kinds.names()) | outs


def test_every_deployment_serves_a_model_folder_its_image_holds(compose, compose_gpu) -> None:
    """Each model service serves GENSERVE_<KIND>_MODEL, or its kind's default folder: the
    image it runs must carry that folder, or the service cannot start."""
    dockerfile = (PROJECT_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "for kind in $(ls models)" in dockerfile
    held = {t: _image_folders(dockerfile, t) for t in ("cpu", "gpu")}

    def served(kind: kinds.ModelKind, env: dict[str, Any]) -> str:
        default: str = kind.settings.model_fields["model"].default
        return str(env.get(f"GENSERVE_{kind.env_name}_MODEL", default))

    for target, doc in (("cpu", compose), ("gpu", compose_gpu)):
        for kind in kinds.kinds():
            env = doc["services"][kind.name].get("environment") or {}
            assert served(kind, env) in held[target], (target, kind.name)
    for target, overlay in (("cpu", "base"), ("gpu", "overlays/gpu")):
        by = {(d["kind"], d["metadata"]["name"]): d for d in render(K8S / overlay)}
        for kind in kinds.kinds():
            container = by[("Deployment", kind.name)]["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            assert served(kind, env) in held[target], (overlay, kind.name)
