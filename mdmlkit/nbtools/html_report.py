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

What the page shows is what works (:func:`prepare_offline`):

* formulas: MathJax 3 (``tex-svg``, vendored) is inlined when the markdown has TeX,
  so ``$...$`` renders offline;
* icons: the Font Awesome 5 fonts of the widget buttons (play, pause, ...) are
  embedded as data URIs (``embed-amd.js`` has the icon CSS, not the fonts);
* controls whose effect needs the kernel (sliders, dropdowns, ... not tied to another
  widget by ``jslink``) are disabled and their output gets a visible note, "static
  snapshot: these controls need a running kernel";
* an nglview trajectory whose frames are not embedded shows its first frame with the
  player disabled and the note "trajectory player needs a running kernel";
* a widget output whose model was closed during the run (e.g. a finished tqdm bar with
  ``leave=False``) shows its text fallback instead of "Error displaying widget: model
  not found";
* an nglview view replays what the kernel asked for (the message archive: structure,
  representations, shapes, camera), not the snapshot of the browser's own state that
  JupyterLab saves with the notebook.  That snapshot comes in part from round trips
  through the kernel that a busy kernel answers late (nglview 4.0): its representation
  list (``_ngl_repr_dict``) can still be the default ball-and-stick while the live view
  showed the notebook's element colours, and its camera can be missing (a blank canvas).
  Views with embedded trajectory frames keep the snapshot: only that path plays them.
"""
from __future__ import annotations

import base64
import copy
import gzip
import json
import re
import sys
import warnings
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from mdmlkit.errors import MissingFileError, MissingWidgetBundleWarning
from mdmlkit.utils import atomic_path

__all__ = ["export_html", "render_html", "widget_state", "widget_modules", "find_widget_bundle",
           "prepare_offline", "WIDGET_STATE_MIME", "WIDGET_VIEW_MIME", "STATIC_NOTE_CLASS",
           "MissingWidgetBundleWarning"]

VENDOR_DIR = Path(__file__).resolve().parent / "_vendor"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
#: CSS class of the notes marking controls that need a kernel
STATIC_NOTE_CLASS = "mdmlkit-static-note"
#: ipywidgets models whose value a user changes (their effect needs the kernel unless jslinked)
INPUT_MODELS = frozenset({
    "IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "IntRangeSliderModel",
    "FloatRangeSliderModel", "SelectionSliderModel", "SelectionRangeSliderModel", "DropdownModel",
    "RadioButtonsModel", "SelectModel", "SelectMultipleModel", "ToggleButtonsModel", "ToggleButtonModel",
    "CheckboxModel", "IntTextModel", "FloatTextModel", "BoundedIntTextModel", "BoundedFloatTextModel",
    "TextModel", "TextareaModel", "ButtonModel", "PlayModel", "ColorPickerModel", "DatePickerModel",
    "ComboboxModel", "TagsInputModel"})
_LINK_MODELS = frozenset({"LinkModel", "DirectionalLinkModel"})
_TEX = re.compile(r"\$[^$\n]+\$|\\\(|\\\[|\\begin\{")
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
{{ resources.mdmlkit.mathjax }}
{{ resources.mdmlkit.fonts }}
{%- endblock html_head_js_mathjax -%}
"""

_MATHJAX_CONFIG = """window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: "tex2jax_ignore", processHtmlClass: "tex2jax_process"},
  svg: {fontCache: "global"}
};"""


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


#: webpack bundles (nglview's) find their "automatic publicPath" from the last <script> with
#: an http(s) src when their factory runs outside script evaluation, and throw without one;
#: a script of an unknown type is never fetched, so this one only satisfies that lookup
_PUBLIC_PATH_ANCHOR = ('<script type="text/plain" data-mdmlkit="webpack publicPath anchor, never fetched" '
                       'src="https://offline.invalid/mdmlkit-report/"></script>')


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
    parts.append(_PUBLIC_PATH_ANCHOR)
    return "\n".join(parts)


def _children(value: Any) -> list[str]:
    """Model ids referenced (``IPY_MODEL_<id>``) anywhere in a state value."""
    found: list[str] = []
    if isinstance(value, str):
        if value.startswith("IPY_MODEL_"):
            found.append(value[len("IPY_MODEL_"):])
    elif isinstance(value, dict):
        for v in value.values():
            found += _children(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += _children(v)
    return found


def _tree(models: dict, root: str) -> list[str]:
    seen, todo = [], [root]
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in models:
            continue
        seen.append(mid)
        todo += _children(models[mid].get("state", {}))
    return seen


def _note(text: str) -> dict:
    html = (f"<div class='{STATIC_NOTE_CLASS}' style='background:#fff4e5;border-left:4px solid #b26a00;"
            f"padding:4px 8px;margin:4px 0;font-size:13px'>&#9888; {text}</div>")
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": html}}


def _replay_archive(ngl_state: dict) -> None:
    """Make an nglview view (NGLModel state) rebuild itself from its message archive.

    nglview's embed code uses the saved browser snapshot (``_ngl_repr_dict``,
    ``_camera_orientation``) when ``_camera_orientation`` or
    ``_ngl_full_stage_parameters`` is set, and otherwise replays ``_ngl_msg_archive``,
    the calls the kernel made (as for a notebook run by papermill).  The snapshot is kept
    when trajectory frames are embedded (``_ngl_coordinate_resource``) or there is no
    archive to replay.
    """
    if (ngl_state.get("_ngl_coordinate_resource") or {}).get("n_frames") or not ngl_state.get("_ngl_msg_archive"):
        return
    ngl_state["_camera_orientation"] = []
    ngl_state["_ngl_full_stage_parameters"] = {}
    ngl_state["_ngl_repr_dict"] = {}


def prepare_offline(nb: Any) -> Any:
    """A copy of executed notebook ``nb`` that tells the truth without a kernel.

    Controls that need the kernel are disabled (with a ``description_tooltip``) and
    each output holding them is preceded by a note (class :data:`STATIC_NOTE_CLASS`);
    nglview trajectories without embedded frames get their player disabled and a note;
    nglview views replay their message archive (see the module docstring);
    widget outputs whose model is missing from the saved state fall back to their text.
    """
    nb = copy.deepcopy(nb)
    state = widget_state(nb)
    models: dict = state["state"] if state else {}
    linked: set[str] = set()
    for m in models.values():
        if m.get("model_name") in _LINK_MODELS:
            for end in ("source", "target"):
                linked.update(_children(m.get("state", {}).get(end)))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        new_outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            view = data.get(WIDGET_VIEW_MIME)
            if view is None:
                new_outputs.append(out)
                continue
            root = view.get("model_id")
            if root not in models:
                data.pop(WIDGET_VIEW_MIME)
                if data:
                    new_outputs.append(out)
                continue
            tree = _tree(models, root)
            # nglview's own buttons (fullscreen, GUI) are disabled without a note of their own
            ngl_aux = {c for mid in tree if models[mid].get("model_name") == "NGLModel"
                       for k, v in models[mid].get("state", {}).items() if k != "_iplayer"
                       for c in _tree(models, next(iter(_children(v)), ""))}
            static_inputs = [mid for mid in tree if models[mid].get("model_name") in INPUT_MODELS
                             and mid not in linked and mid not in ngl_aux]
            kernel_only = bool(static_inputs)
            notes = []
            for mid in tree:
                st = models[mid].get("state", {})
                if models[mid].get("model_name") == "NGLModel":
                    _replay_archive(st)
                if models[mid].get("model_name") == "NGLModel" and int(st.get("max_frame") or 0) > 0 \
                        and not (st.get("_ngl_coordinate_resource") or {}).get("n_frames"):
                    player = _tree(models, _children(st.get("_iplayer"))[0]) if _children(st.get("_iplayer")) else []
                    static_inputs += [p for p in player if models[p].get("model_name") in INPUT_MODELS]
                    notes.append(f"Static 3-D view: frame 0 of {int(st['max_frame']) + 1}. "
                                 "The trajectory player needs a running kernel (open the notebook in JupyterLab).")
            if kernel_only:
                notes.insert(0, "Static snapshot: these controls need a running kernel (open the notebook "
                                "in JupyterLab and run it); here they are disabled.")
            static_inputs += [mid for mid in ngl_aux if models[mid].get("model_name") in INPUT_MODELS]
            for mid in static_inputs:
                st = models[mid].setdefault("state", {})
                st["disabled"] = True
                st["description_tooltip"] = st["tooltip"] = "needs a running kernel"
            new_outputs += [_note(t) for t in dict.fromkeys(notes)]
            new_outputs.append(out)
        cell["outputs"] = new_outputs
    return nb


@cache
def _font_css() -> str:
    rules = []
    for family, weight, name in (("mdmlkit FA Solid", 900, "fa-solid-900.woff2"),
                                 ("mdmlkit FA Regular", 400, "fa-regular-400.woff2")):
        path = VENDOR_DIR / name
        if not path.is_file():
            raise MissingFileError(f"{path} is missing: the vendored icon font ships with mdmlkit "
                                   f"(re-create it with `bash {VENDOR_DIR / 'fetch.sh'}`)")
        b64 = base64.b64encode(path.read_bytes()).decode("ascii")
        rules.append(f"@font-face{{font-family:'{family}';font-style:normal;font-weight:{weight};"
                     f"font-display:block;src:url(data:font/woff2;base64,{b64}) format('woff2')}}")
    rules.append(".fa,.fas{font-family:'mdmlkit FA Solid' !important;font-weight:900 !important}")
    rules.append(".far{font-family:'mdmlkit FA Regular' !important;font-weight:400 !important}")
    return "<style>\n" + "\n".join(rules) + "\n</style>"


def _has_tex(nb: Any) -> bool:
    return any(cell.get("cell_type") == "markdown" and _TEX.search("".join(cell.get("source", "")))
               for cell in nb.get("cells", []))


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
        nb = prepare_offline(nb)
        exporter = HTMLExporter(template_name="lab", theme=theme, embed_images=True,
                                extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                                template_file=_TEMPLATE_NAME)
        mathjax = (_inline(_MATHJAX_CONFIG) + "\n" + _inline(_vendored("mathjax-tex-svg.js.gz"))
                   if _has_tex(nb) else "")
        resources = {"mdmlkit": {"requirejs": _inline(_vendored("require.js.gz")),
                                 "widget_scripts": _widget_scripts(nb, bundle_dirs),
                                 "mathjax": mathjax, "fonts": _font_css() if widget_state(nb) else ""}}
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
