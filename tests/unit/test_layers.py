"""The house's layering, checked on the source: the library never imports the services,
runtime code never imports build code, and a model kind is named only in its own folder,
its service file and the registry."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from genserve import kinds
from genserve.config import PROJECT_ROOT

LIBRARY = PROJECT_ROOT / "genserve"
SERVICES = PROJECT_ROOT / "services"
BUILD_MODULES = {"export", "train", "bench", "modules", "parity", "corpus", "lexicon", "shapes"}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_the_library_never_imports_the_services() -> None:
    for path in LIBRARY.rglob("*.py"):
        wrong = [m for m in imports(path) if m == "services" or m.startswith("services.")]
        assert not wrong, f"{path.relative_to(PROJECT_ROOT)} imports {wrong}"


def test_runtime_code_never_imports_build_code() -> None:
    """What a service loads (a kind's served model and api) never reaches export, train,
    bench or the torch modules; those may import the runtime, not the other way."""
    for path in [*LIBRARY.rglob("*.py"), *SERVICES.rglob("*.py")]:
        if path.stem in BUILD_MODULES or path.parent.name == "ops" or path.name == "cli.py":
            continue
        wrong = [m for m in imports(path) if m.rsplit(".", 1)[-1] in BUILD_MODULES]
        assert not wrong, f"{path.relative_to(PROJECT_ROOT)} imports build code {wrong}"


def test_torch_is_imported_only_by_build_code() -> None:
    """A kind's torch modules live in ``<kind>/modules.py`` (like export, train and bench,
    a build module), so the check above keeps them out of every serving process: a torch
    module under any other name would escape it."""
    for path in [*LIBRARY.rglob("*.py"), *SERVICES.rglob("*.py")]:
        torch = [m for m in imports(path) if m == "torch" or m.startswith("torch.")]
        assert not torch or path.stem in BUILD_MODULES, (
            f"{path.relative_to(PROJECT_ROOT)} imports {torch}: torch modules go in "
            "<kind>/modules.py, the rest in export, train or bench"
        )


def _names_in(path: Path) -> set[str]:
    """Identifiers, and whole words in strings, comments aside."""
    found: set[str] = set()
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.NAME:
            found.add(tok.string)
        elif tok.type == tokenize.STRING:
            found.update(re.findall(r"[A-Za-z_]+", tok.string))
    return found


def test_a_kind_is_named_only_in_its_folder_its_service_and_the_registry() -> None:
    registry = LIBRARY / "kinds.py"
    for kind in kinds.kinds():
        own_folder = LIBRARY / kind.name
        own_service = PROJECT_ROOT / (kind.service.split(":")[0].replace(".", "/") + ".py")
        for path in [*LIBRARY.rglob("*.py"), *SERVICES.rglob("*.py")]:
            if path in (registry, own_service) or own_folder in path.parents:
                continue
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            assert kind.name not in _names_in(path), (
                f"{path.relative_to(PROJECT_ROOT)} names the {kind.name} kind; take what "
                "differs per kind from genserve.kinds instead"
            )


def _closure(start: str, extra: list[str]) -> dict[str, str]:
    """Every module that importing ``start`` (and ``extra``) can reach, by any import
    statement of the project's own files (inside functions too), mapped to who imports it;
    modules outside the project are collected but not followed."""
    seen: dict[str, str] = {}
    todo = [(start, "(start)"), *((m, "(the registry)") for m in extra)]
    while todo:
        module, by = todo.pop()
        if module in seen:
            continue
        seen[module] = by
        base = PROJECT_ROOT / module.replace(".", "/")
        path = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [(a.name, module) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                todo.append((node.module, module))
                # ``from package import module`` names a module as well as attributes
                todo += [(f"{node.module}.{a.name}", module) for a in node.names]
    return seen


def test_the_gateway_never_imports_a_model_runtime() -> None:
    """The gateway process loads the kinds' contracts (their ``api`` modules: pydantic
    and numpy), never what runs a model: ONNX Runtime, torch, genserve.runtime or a
    kind's served-model module."""
    contracts = [ref.partition(":")[0] for ref in kinds.BUILTIN]
    reached = _closure("services.gateway", contracts)
    runtimes = {"onnxruntime", "torch", "genserve.runtime"}
    runtimes |= {k.model.partition(":")[0] for k in kinds.kinds()}
    wrong = {
        m: by for m, by in reached.items() if any(m == r or m.startswith(r + ".") for r in runtimes)
    }
    assert "genserve.gan.api" in reached and "services.rest" in reached  # it did walk
    assert not wrong, f"the gateway reaches a model runtime: {wrong}"
