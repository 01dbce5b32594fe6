"""Notebook tooling: the papermill runner behind ``make demo``, offline HTML reports
with widget state, and the nglview lab-extension fix (``mdmlkit fix-nglview``)."""
from mdmlkit.nbtools.html_report import export_html, render_html
from mdmlkit.nbtools.outputs import OutputDir, StepProgress, Table, format_table, html_table, markdown
from mdmlkit.nbtools.runner import NotebookRun, list_notebooks, load_profile, run_notebook, run_notebooks

__all__ = ["NotebookRun", "OutputDir", "StepProgress", "Table", "format_table", "html_table", "markdown", "export_html", "list_notebooks", "load_profile", "render_html",
           "run_notebook", "run_notebooks"]
