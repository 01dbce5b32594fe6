"""Packaging consistency: environment.yml and pyproject.toml list the same packages."""
from __future__ import annotations

import json
import re

import pytest
import tomllib

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


def test_nglview_labextension_fix(tmp_path, monkeypatch):
    """`mdmlkit fix-nglview` rewrites a mis-registered lab extension version (nglview#1181)."""
    from mdmlkit.cli import main
    from mdmlkit.nbtools import nglview_fix as nglview_labext

    monkeypatch.setattr(nglview_labext, "frontend_version", lambda: "4.0")
    ext = nglview_labext.labextension_dir(tmp_path)
    (ext / "static").mkdir(parents=True)
    (ext / "package.json").write_text(json.dumps({"name": "nglview-js-widgets", "version": "3.1.5"}))
    js = ext / "static" / "remoteEntry.js"
    js.write_text('a.x=1;e.exports={version:"3.1.5",other:"3.1.5"};b.exports={version:"1.2.3"}')
    assert nglview_labext.check(tmp_path)[0] is False
    assert main(["fix-nglview", "--check", "--prefix", str(tmp_path)]) == 1
    assert main(["fix-nglview", "--prefix", str(tmp_path)]) == 0
    assert nglview_labext.check(tmp_path)[0] is True
    assert json.loads((ext / "package.json").read_text())["version"] == "4.0.0"
    # only the version module changed; other strings and modules are untouched
    assert js.read_text() == 'a.x=1;e.exports={version:"4.0.0",other:"3.1.5"};b.exports={version:"1.2.3"}'
    assert nglview_labext.fix(tmp_path) == []             # idempotent
    assert not list(ext.rglob(".*.tmp"))                  # no temp files left behind
