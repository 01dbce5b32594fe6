"""The package's shape: every module imports on its own, no import circles, no private
names imported across modules, public API listed in ``__all__``.

The static checks read every module's source (imports inside functions included: a
circle hidden by a function-level import is still a circle) and resolve names imported
from a package ``__init__`` to the module that defines them.
"""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import mdmlkit

PACKAGE_DIR = Path(mdmlkit.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}
PACKAGES = {m for m, p in MODULES.items() if p.name == "__init__.py"}


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every mdmlkit import in ``module``'s source."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if module in PACKAGES else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "mdmlkit" or target.startswith("mdmlkit."):
                found.append((target, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mdmlkit"):
                    found.append((a.name, [], node.lineno))
    return found


def _defining_module(target: str, name: str) -> str:
    """The module that really provides ``name`` imported from ``target``."""
    sub = f"{target}.{name}"
    if sub in MODULES:
        return sub
    if target in PACKAGES:
        obj = getattr(importlib.import_module(target), name, None)
        origin = getattr(obj, "__module__", None)
        if isinstance(origin, str) and origin in MODULES:
            return origin
    return target


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES if m not in PACKAGES}
    for module in graph:
        for target, names, _ in _imports(module):
            targets = {_defining_module(target, n) for n in names} if names else {target}
            graph[module] |= {t for t in targets if t in graph and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_sees_a_circle():
    """The checker itself: a planted circle a → b → c → a is found, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import circles between modules: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_no_private_names_across_modules():
    offences = []
    for module in MODULES:
        for target, names, line in _imports(module):
            private_module = target.rsplit(".", 1)[-1].startswith("_")
            same_package = target.rsplit(".", 1)[0] == (module if module in PACKAGES else module.rsplit(".", 1)[0])
            for n in names:
                if n.startswith("_") and not n.startswith("__") and not (private_module and same_package):
                    offences.append(f"{MODULES[module].relative_to(PACKAGE_DIR.parent)}:{line}: {n} from {target}")
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


def test_private_modules_stay_in_their_package():
    offences = []
    for module in MODULES:
        for target, _, line in _imports(module):
            parts = target.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if not (module == owner or module.startswith(owner + ".")):
                        offences.append(f"{module}:{line} imports {target}")
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_public_api_is_listed(package):
    """Every subpackage re-exports its public names in ``__all__``, and they all exist."""
    mod = importlib.import_module(package)
    exported = getattr(mod, "__all__", None)
    assert exported, f"{package} has no __all__"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"
    assert len(set(exported)) == len(exported), f"{package}.__all__ has duplicates"


def _import_alone(module: str) -> tuple[str, int, str]:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                          timeout=300)
    return module, proc.returncode, proc.stderr[-2000:]


def test_every_module_imports_in_a_fresh_interpreter():
    """Import order cannot hide a circle: each module is the first thing a new process imports."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_import_alone, sorted(MODULES)))
    failures = [f"{m}:\n{err}" for m, rc, err in results if rc != 0]
    assert not failures, "\n\n".join(failures)
