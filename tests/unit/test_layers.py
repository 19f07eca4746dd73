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
