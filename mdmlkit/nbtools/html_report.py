"""Standalone HTML reports of executed notebooks, with live widgets and no network.

nbconvert's default HTML loads require.js, the ipywidgets HTML manager and every
third-party widget library (nglview, ...) from CDNs when the page opens, so an exported
notebook shows no widgets offline or behind a firewall.  :func:`export_html` inlines
all of it instead:

* require.js and ``@jupyter-widgets/html-manager``'s ``embed-amd.js`` (vendored under
  ``mdmlkit/nbtools/_vendor/``, see its README for versions and licences);
* each third-party widget module named in the saved widget state, read from the
  environment's classic-notebook extension (``share/jupyter/nbextensions/<module>/index.js``,
  an AMD bundle installed with the Python package, e.g. nglview's);
* the widget state that papermill/nbclient stored in the notebook metadata
  (``store_widget_state``), which the page replays with no kernel.

nglview views need nothing more: a view without a kernel replays its saved message
archive (``loadFile`` with the structure text), so the 3D view renders and can be
rotated.  Interactive callbacks written in Python (``observe``) of course do not run
without a kernel; links made in JavaScript (``jslink``) do.

A report is about 9 MB when it holds an nglview view (nglview's bundle is 5.3 MB).
MathJax still comes from its CDN (loaded after the widgets, so it cannot block them);
offline, equations show as TeX source.
"""
from __future__ import annotations

import gzip
import json
import sys
import warnings
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from mdmlkit.errors import MissingFileError, MissingWidgetBundleWarning
from mdmlkit.utils import atomic_path

__all__ = ["export_html", "render_html", "widget_state", "widget_modules", "find_widget_bundle",
           "WIDGET_STATE_MIME", "MissingWidgetBundleWarning"]

VENDOR_DIR = Path(__file__).resolve().parent / "_vendor"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
#: modules the HTML manager bundles itself (no separate JavaScript needed)
BUILTIN_MODULES = frozenset({"@jupyter-widgets/base", "@jupyter-widgets/controls",
                             "@jupyter-widgets/output"})

_TEMPLATE_NAME = "mdmlkit_offline_report.html.j2"
# Extends nbconvert's "lab" template: the CDN <script src=...> of require.js and of the
# widget manager are replaced by inline scripts; MathJax is fetched only after the page
# (and so the widgets) has loaded, so an unreachable CDN cannot delay the widgets.
_TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
{{ resources.mdmlkit.requirejs }}
{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}
{%- if "widgets" in nb.metadata -%}
{{ resources.mdmlkit.widget_scripts }}
{%- endif -%}
{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
{{ mathjax(resources.mathjax_url) | replace('<script src=', '<script data-mdmlkit-deferred-src=') }}
<script>
window.addEventListener("load", function () {
  document.querySelectorAll("script[data-mdmlkit-deferred-src]").forEach(function (old) {
    var s = document.createElement("script");
    s.async = true;
    s.src = old.getAttribute("data-mdmlkit-deferred-src");
    document.head.appendChild(s);
  });
});
</script>
{%- endblock html_head_js_mathjax -%}
"""


def widget_state(nb: Any) -> dict | None:
    """The saved widget state (``{"version_major", "version_minor", "state"}``) or None."""
    widgets = (nb.get("metadata") or {}).get("widgets") or {}
    state = widgets.get(WIDGET_STATE_MIME)
    return state if state and state.get("state") else None


def widget_modules(nb: Any) -> dict[str, str]:
    """Third-party widget modules used by the saved state: ``{module: version}``."""
    state = widget_state(nb) or {"state": {}}
    mods: dict[str, str] = {}
    for model in state["state"].values():
        for kind in ("model", "view"):
            name = model.get(f"{kind}_module") or model.get("state", {}).get(f"_{kind}_module")
            version = (model.get(f"{kind}_module_version")
                       or model.get("state", {}).get(f"_{kind}_module_version") or "*")
            if name and name not in BUILTIN_MODULES:
                mods.setdefault(name, version)
    return mods


def _nbextension_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        from jupyter_core.paths import jupyter_path

        dirs += [Path(p) for p in jupyter_path("nbextensions")]
    except ImportError:  # pragma: no cover - jupyter_core comes with nbconvert
        pass
    dirs.append(Path(sys.prefix) / "share" / "jupyter" / "nbextensions")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find_widget_bundle(module: str, search: Iterable[Path | str] | None = None) -> Path | None:
    """The local AMD bundle of widget module ``module`` (``<nbextensions>/<module>/index.js``).

    Searches ``search`` (default: Jupyter's nbextensions directories, the venv's first);
    returns None when no directory has it.
    """
    for d in (search if search is not None else _nbextension_dirs()):
        p = Path(d) / module / "index.js"
        if p.is_file():
            return p
    return None


@cache
def _vendored(name: str) -> str:
    path = VENDOR_DIR / name
    if not path.is_file():
        raise MissingFileError(f"{path} is missing: the vendored widget JavaScript ships with mdmlkit "
                                f"(re-create it with `bash {VENDOR_DIR / 'fetch.sh'}`)")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read()


@lru_cache(maxsize=8)
def _read_bundle(path: str, mtime: float) -> str:
    return Path(path).read_text(encoding="utf-8")


def _inline(js: str) -> str:
    """JavaScript as an inline <script>; ``</script`` inside it cannot end the element."""
    return "<script>\n" + js.replace("</script", "<\\/script").replace("<!--", "<\\!--") + "\n</script>"


def _named_amd(module: str, js: str) -> str:
    """Inline an anonymous AMD bundle so that require.js registers it as ``module``.

    The bundle's top-level ``define([...], factory)`` runs while the script is parsed;
    a temporary ``define`` gives that first anonymous call the module's name.
    """
    name = json.dumps(module)
    before = ("(function () {\n"
              "  var define0 = window.define, named = false;\n"
              "  window.__mdmlkitDefine = define0;\n"
              "  window.define = function () {\n"
              "    var args = Array.prototype.slice.call(arguments);\n"
              f"    if (!named && typeof args[0] !== 'string') {{ named = true; args.unshift({name}); }}\n"
              "    return define0.apply(this, args);\n"
              "  };\n"
              "  window.define.amd = define0.amd;\n"
              "})();")
    after = "window.define = window.__mdmlkitDefine; delete window.__mdmlkitDefine;"
    return "\n".join([_inline(before), _inline(js), _inline(after)])


def _widget_scripts(nb: Any, search: Iterable[Path | str] | None = None) -> str:
    parts = ["<!-- @jupyter-widgets/html-manager embed-amd.js, inlined by mdmlkit.nbtools.html_report -->",
             _inline(_vendored("embed-amd.js.gz"))]
    for module, version in sorted(widget_modules(nb).items()):
        bundle = find_widget_bundle(module, search)
        if bundle is None:
            warnings.warn(f"widget module {module!r} ({version}) has no local bundle "
                          f"(<nbextensions>/{module}/index.js); the report loads it from a CDN "
                          f"when online and cannot show it offline", MissingWidgetBundleWarning,
                          stacklevel=3)
            continue
        parts.append(f"<!-- {module} (widget state version {version}) from {bundle.name} of its nbextension -->")
        parts.append(_named_amd(module, _read_bundle(str(bundle), bundle.stat().st_mtime)))
    return "\n".join(parts)


def render_html(nb: Any, *, offline: bool = True, theme: str = "light",
                bundle_dirs: Iterable[Path | str] | None = None, name: str | None = None) -> str:
    """HTML text of notebook node ``nb`` (nbformat v4).

    ``offline=True`` inlines require.js, the widget manager and the third-party widget
    bundles (see module docstring); ``offline=False`` is nbconvert's CDN-based page.
    Local images referenced from markdown are embedded either way.
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if offline:
        exporter = HTMLExporter(template_name="lab", theme=theme, embed_images=True,
                                extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                                template_file=_TEMPLATE_NAME)
        resources = {"mdmlkit": {"requirejs": _inline(_vendored("require.js.gz")),
                                 "widget_scripts": _widget_scripts(nb, bundle_dirs)}}
    else:
        exporter = HTMLExporter(template_name="lab", theme=theme, embed_images=True)
        resources = {}
    if name:
        resources["metadata"] = {"name": name}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def export_html(ipynb: Path | str, html: Path | str, *, offline: bool = True,
                theme: str = "light") -> Path:
    """Write executed notebook ``ipynb`` as a standalone HTML report at ``html`` (atomic).

    The widget state saved by the run is embedded, so sliders, dropdowns, output areas
    and nglview 3D views render in a browser with no kernel; with ``offline=True``
    (default) the page needs no network either.
    """
    import nbformat

    ipynb = Path(ipynb)
    nb = nbformat.read(str(ipynb), as_version=4)
    body = render_html(nb, offline=offline, theme=theme, name=ipynb.stem)
    with atomic_path(html) as tmp:
        Path(tmp).write_text(body, encoding="utf-8")
    return Path(html)
