"""Packaging consistency: environment.yml and pyproject.toml list the same packages."""
from __future__ import annotations

import re
import tomllib

import pytest

# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name(req: str) -> str:
    req = re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0]
    return req.lower().replace("_", "-")


def _pyproject_names(repo_root) -> set[str]:
    meta = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r) for r in reqs}


def _environment_names(repo_root) -> set[str]:
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    names: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep.get("pip", []) if not r.startswith("-e")}
        else:
            n = _name(dep)
            names.add(CONDA_TO_PYPI.get(n, n))
    return names - {"python", "pip"}


def test_environment_yml_matches_pyproject(repo_root):
    py, env = _pyproject_names(repo_root), _environment_names(repo_root)
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_torch_pinned_first_in_makefile(repo_root):
    text = (repo_root / "Makefile").read_text()
    torch_at = text.index("torch==2.13.0")
    assert torch_at < text.index('-e ".[')


def test_ci_calls_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (repo_root / ".ci" / "run").read_text()


def test_console_entry_point_parses():
    from mdmlkit.cli import build_parser

    args = build_parser().parse_args(["run-notebooks", "--quick", "--only", "01"])
    assert args.quick and args.only == ["01"]
