"""Test-set error metrics of active-learning runs: names, axis labels, selection.

The loop (:mod:`mdmlkit.active.loop`), the benchmark (:mod:`mdmlkit.active.benchmark`)
and the plots (:mod:`mdmlkit.viz.plotting`) record and show the same four numbers,
as computed by :meth:`mdmlkit.potential.Trainer.evaluate`:

* ``energy_rmse_meV_atom``, ``energy_mae_meV_atom``: energy per atom, meV/atom;
* ``force_rmse_meV_A``, ``force_mae_meV_A``: force components, meV/Å.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["METRICS", "METRIC_LABELS", "metric_label", "select_metrics"]

#: Metric keys, in display order.
METRICS: tuple[str, ...] = ("energy_rmse_meV_atom", "force_rmse_meV_A", "energy_mae_meV_atom",
                            "force_mae_meV_A")

#: Axis label (quantity and unit) of each metric.
METRIC_LABELS: dict[str, str] = {
    "energy_rmse_meV_atom": "energy RMSE (meV/atom)",
    "force_rmse_meV_A": "force RMSE (meV/Å)",
    "energy_mae_meV_atom": "energy MAE (meV/atom)",
    "force_mae_meV_A": "force MAE (meV/Å)",
}


def metric_label(metric: str) -> str:
    """Axis label of ``metric`` (the key itself when it is not a known metric).

    A metric of an extra test set, ``"<set>/<metric>"`` (e.g. ``"hot/force_rmse_meV_A"``),
    gets the set's name in front: ``"hot test: force RMSE (meV/Å)"``.
    """
    if "/" in metric:
        prefix, base = metric.rsplit("/", 1)
        if base in METRIC_LABELS:
            return f"{prefix} test: {METRIC_LABELS[base]}"
    return METRIC_LABELS.get(metric, metric)


def select_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The known metrics present in ``values`` (e.g. an evaluation or history record), as floats."""
    return {m: float(values[m]) for m in METRICS if m in values}
