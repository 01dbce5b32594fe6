"""Check (and optionally repair) nglview's JupyterLab extension version.

nglview 4.0.1 on PyPI says its widgets need frontend module ``nglview-js-widgets``
version "4.0" (``nglview._frontend.__frontend_version__``), but the lab extension in
the same wheel registers itself as 3.1.5 (nglviewer/nglview#1181, #1172). JupyterLab's
widget manager then refuses every nglview widget ("Module nglview-js-widgets, version
4.0 is not registered, however, 3.1.5 is"): no 3D view renders in JupyterLab. Classic
HTML embedding (mdmlkit.nbtools.html_report) is unaffected: require.js does not check versions.

``mdmlkit fix-nglview --check`` reports the mismatch (exit 1); ``mdmlkit fix-nglview``
(run by ``make`` when it builds the venv) rewrites the version the installed extension registers (its ``package.json``
and the one-line webpack module that carries it) to the one the Python side asks
for. The JavaScript is otherwise unchanged; the fix is idempotent and only touches
``<prefix>/share/jupyter/labextensions/nglview-js-widgets``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

LABEXT = "nglview-js-widgets"
# the webpack module holding the extension's version: e.exports={version:"3.1.5"...
_VERSION_MODULE = re.compile(r'(exports=\{version:")(\d+\.\d+\.\d+[^"]*)(")')


def frontend_version() -> str:
    """Frontend module version the installed nglview Python package requests."""
    import nglview._frontend as f

    return f.__frontend_version__


def labextension_dir(prefix: str | Path = sys.prefix) -> Path:
    return Path(prefix) / "share" / "jupyter" / "labextensions" / LABEXT


def registered_version(labext: Path) -> str:
    """Version the lab extension registers its widgets under (its package.json version)."""
    return json.loads((labext / "package.json").read_text())["version"]


def satisfies(version: str, requested: str) -> bool:
    """Whether ``version`` (x.y.z) satisfies the requested widget module version.

    Widget managers read the request as a semver range; nglview sends plain versions
    ("4.0", "3.1.5"), i.e. every given component must match (or ``^``/``~`` ranges).
    """
    v = [int(x) for x in re.findall(r"\d+", version)[:3]]
    req = requested.strip()
    if req in ("", "*"):
        return True
    op = req[0] if req[0] in "^~" else ""
    r = [int(x) for x in re.findall(r"\d+", req)[:3]]
    if op == "^":
        return v[:1] == r[:1] and v[:len(r)] >= r
    if op == "~":
        return v[:2] == r[:2] and v[:len(r)] >= r
    return v[:len(r)] == r


def check(prefix: str | Path = sys.prefix) -> tuple[bool, str]:
    labext = labextension_dir(prefix)
    if not (labext / "package.json").is_file():
        return False, f"{labext} is missing: nglview's lab extension is not installed"
    have, want = registered_version(labext), frontend_version()
    ok = satisfies(have, want)
    msg = (f"nglview Python side requests {LABEXT} {want!r}; the lab extension in {labext} "
           f"registers {have!r}: " + ("compatible" if ok else
                                      "JupyterLab will not render nglview widgets (nglview#1181)"))
    return ok, msg


def fix(prefix: str | Path = sys.prefix) -> list[Path]:
    """Make the installed lab extension register the requested version; returns changed files."""
    labext = labextension_dir(prefix)
    want = frontend_version()
    new = ".".join((re.findall(r"\d+", want) + ["0", "0"])[:3])
    have = registered_version(labext)
    if satisfies(have, want):
        return []
    changed: list[Path] = []
    for js in sorted((labext / "static").glob("*.js")):
        text = js.read_text(encoding="utf-8")
        patched, n = _VERSION_MODULE.subn(
            lambda m: m.group(1) + new + m.group(3) if m.group(2) == have else m.group(0), text)
        if n and patched != text:
            _replace_text(js, patched)
            changed.append(js)
    if not changed:
        raise RuntimeError(f"no webpack module with version {have!r} found under {labext / 'static'}")
    pkg = labext / "package.json"
    meta = json.loads(pkg.read_text())
    meta["version"] = new
    _replace_text(pkg, json.dumps(meta, indent=2) + "\n")
    return changed + [pkg]


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename): never a half-patched file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fix", action="store_true", help="patch the installed extension's version")
    ap.add_argument("--prefix", default=sys.prefix, help="environment prefix (default: this Python's)")
    args = ap.parse_args(argv)
    ok, msg = check(args.prefix)
    print(msg)
    if ok or not args.fix:
        return 0 if ok else 1
    for p in fix(args.prefix):
        print(f"patched {p}")
    ok, msg = check(args.prefix)
    print(msg)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
