"""Is a strategy better than a baseline?  Paired comparison of learning curves over seeds.

In :func:`~mdmlkit.active.run_learning_curves` all strategies of one seed share
the initial set and weights, so the error difference to the baseline is taken
per seed, d_s = e_strategy,s − e_baseline,s, at every round (budget).  With n
seeds, mean d̄ and standard deviation s_d (ddof=1), the paired Student t test
gives::

    t = d̄ / (s_d / sqrt(n)),      p = 2 · P(T_{n−1} > |t|)
    CI = d̄ ± t_{(1+c)/2, n−1} · s_d / sqrt(n)          (confidence c)

For error metrics d̄ < 0 means the strategy is better.  A difference counts as
demonstrated when the CI excludes zero.

One round of a warm-started curve can be far off the trend (a restarted learning
rate lands the weights somewhere worse), so a verdict at one budget is fragile.
:func:`curve_ratio` judges the whole curve: per seed, the mean over the rounds
after the shared initial set of ln(e_strategy / e_baseline); the paired t
interval of those per-seed means, exponentiated, is a geometric-mean error
ratio with its confidence interval (< 1: the strategy is better).

How many labels does a strategy save?  :func:`label_ratio` turns the same paired
curves into a ratio of labels at equal error.  Per seed, the two curves (rounds
from ``first_round`` on) are fitted with one power law of common slope,
ln e = a_strategy + b ln n  and  ln e = a_baseline + b ln n  (least squares on the
pooled points), so the strategy reaches any error of the baseline with
exp((a_baseline − a_strategy) / b) times the baseline's labels.  The paired t
interval of those per-seed log ratios, exponentiated, is the label ratio with its
confidence interval (< 1: fewer labels; 1/3 is "a third of the labels").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mdmlkit.errors import InputError

if TYPE_CHECKING:
    from mdmlkit.active.benchmark import LearningCurves

__all__ = ["CurveRatio", "LabelRatio", "PairedComparison", "curve_ratio", "label_ratio",
           "paired_comparison"]


@dataclass(frozen=True)
class PairedComparison:
    """One strategy vs the baseline, per round (see the module docstring).

    Attributes
    ----------
    strategy, baseline, metric : str
    confidence : float
        Level c of the confidence intervals.
    seeds : ndarray of int
        Seeds present for both strategies.
    n_labelled : ndarray [n_rounds]
        Labelled structures per round (mean over those seeds).
    difference : ndarray [n_seeds, n_rounds]
        d_s per seed and round (units of ``metric``; NaN where a run lacks the round).
    n_pairs : ndarray of int [n_rounds]
        Finite differences per round.
    mean_difference, ci_low, ci_high, p_value : ndarray [n_rounds]
        d̄, the confidence interval and the two-sided p-value; CI and p are NaN
        with fewer than two pairs.
    """

    strategy: str
    baseline: str
    metric: str
    confidence: float
    seeds: np.ndarray
    n_labelled: np.ndarray
    difference: np.ndarray
    n_pairs: np.ndarray
    mean_difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray

    @property
    def demonstrated(self) -> np.ndarray:
        """Per round: the confidence interval excludes zero."""
        with np.errstate(invalid="ignore"):
            return (self.ci_low > 0) | (self.ci_high < 0)

    def rows(self) -> list[dict]:
        """One dict per round (budget): n_labelled, n_pairs, mean difference, CI, p-value."""
        return [{"n_labelled": float(self.n_labelled[r]), "n_pairs": int(self.n_pairs[r]),
                 "mean_difference": float(self.mean_difference[r]),
                 "ci_low": float(self.ci_low[r]), "ci_high": float(self.ci_high[r]),
                 "p_value": float(self.p_value[r]), "demonstrated": bool(self.demonstrated[r])}
                for r in range(self.n_labelled.size)]

    def verdict(self, round_: int = -1, unit: str = "") -> str:
        """A sentence judging round ``round_`` (default: the last) against the seed scatter."""
        n = int(self.n_pairs[round_])
        if n < 2:
            return "one seed only: no spread to judge it by"
        d = float(self.mean_difference[round_])
        half = float(self.ci_high[round_] - d)
        unit = f" {unit}" if unit else ""
        level = f"{100 * self.confidence:.0f} %"
        if self.demonstrated[round_]:
            return (f"{'better' if d < 0 else 'worse'} than {self.baseline} ({level} interval of the "
                    f"paired difference ±{half:.3g}{unit}, {n} seeds, p = {self.p_value[round_]:.2g})")
        return (f"no demonstrated difference ({level} interval ±{half:.3g}{unit} from {n} seeds "
                f"includes zero, p = {self.p_value[round_]:.2g})")


def _paired_stats(d: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """Mean, CI low/high and two-sided p of the finite values of ``d``."""
    from scipy.stats import t as t_dist

    d = d[np.isfinite(d)]
    if d.size == 0:
        return np.nan, np.nan, np.nan, np.nan
    mean = float(d.mean())
    if d.size < 2:
        return mean, np.nan, np.nan, np.nan
    se = float(d.std(ddof=1)) / np.sqrt(d.size)
    if se == 0.0:
        return mean, mean, mean, (np.nan if mean == 0.0 else 0.0)
    half = float(t_dist.ppf(0.5 + confidence / 2, d.size - 1)) * se
    p = float(2.0 * t_dist.sf(abs(mean) / se, d.size - 1))
    return mean, mean - half, mean + half, p


def _paired_curves(curves: LearningCurves, baseline: str, metric: str, confidence: float):
    """For every strategy but ``baseline``: (strategy, seeds both have, its values, the
    baseline's values), the value arrays [n_seeds, n_rounds both have] in the order of seeds."""
    if baseline not in curves.strategies:
        raise InputError(f"baseline strategy {baseline!r} not in the results {curves.strategies}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie in (0, 1), got {confidence}")
    ref = curves.curve(baseline, metric)
    for s in curves.strategies:
        if s == baseline:
            continue
        c = curves.curve(s, metric)
        seeds = np.intersect1d(c["seeds"], ref["seeds"])
        n_rounds = min(c["values"].shape[1], ref["values"].shape[1])
        rows_s = [int(np.flatnonzero(c["seeds"] == sd)[0]) for sd in seeds]
        rows_b = [int(np.flatnonzero(ref["seeds"] == sd)[0]) for sd in seeds]
        yield s, seeds, c["values"][rows_s, :n_rounds], ref["values"][rows_b, :n_rounds]


def paired_comparison(curves: LearningCurves, baseline: str = "random",
                      metric: str = "force_rmse_meV_A", confidence: float = 0.95
                      ) -> dict[str, PairedComparison]:
    """Every other strategy of ``curves`` against ``baseline``, paired by seed, per round.

    Parameters
    ----------
    curves : LearningCurves
        Results of :func:`~mdmlkit.active.run_learning_curves`.
    baseline : str
        Strategy compared against.
    metric : str
        A metric of the records (e.g. ``"force_rmse_meV_A"``, meV/Å).
    confidence : float in (0, 1)
        Level of the confidence intervals.

    Returns ``{strategy: PairedComparison}`` in the order of ``curves.strategies``.
    """
    out = {}
    for s, seeds, a, b in _paired_curves(curves, baseline, metric, confidence):
        diff = a - b
        n_rounds = diff.shape[1]
        stats = np.array([_paired_stats(diff[:, r], confidence) for r in range(n_rounds)]
                         ).reshape(n_rounds, 4)
        paired = {int(sd) for sd in seeds}
        nlab = np.array([np.mean([r["n_labelled"] for r in curves.records
                                  if r["strategy"] == s and r["round"] == rd
                                  and int(r["seed"]) in paired] or [np.nan])
                         for rd in range(n_rounds)], dtype=float)
        out[s] = PairedComparison(
            strategy=s, baseline=baseline, metric=metric, confidence=float(confidence),
            seeds=seeds, n_labelled=nlab,
            difference=diff, n_pairs=np.isfinite(diff).sum(axis=0),
            mean_difference=stats[:, 0], ci_low=stats[:, 1], ci_high=stats[:, 2],
            p_value=stats[:, 3])
    return out


@dataclass(frozen=True)
class CurveRatio:
    """Whole-curve comparison of one strategy with the baseline (see the module docstring).

    Attributes
    ----------
    strategy, baseline, metric : str
    confidence : float
    seeds : ndarray of int
        Seeds with at least one paired round.
    rounds : ndarray of int
        Rounds compared (``first_round`` on, present for both strategies).
    log_ratio : ndarray [n_seeds]
        Per seed, mean over its paired rounds of ln(e_strategy / e_baseline).
    ratio, ci_low, ci_high, p_value : float
        exp of the mean log ratio and of its paired t interval; two-sided p of the
        paired t test (NaN with fewer than two seeds).
    """

    strategy: str
    baseline: str
    metric: str
    confidence: float
    seeds: np.ndarray
    rounds: np.ndarray
    log_ratio: np.ndarray
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def demonstrated(self) -> bool:
        """The interval of the ratio excludes 1."""
        return bool(self.ci_high < 1.0 or self.ci_low > 1.0)

    def to_dict(self) -> dict:
        """JSON-friendly fields."""
        return {"strategy": self.strategy, "baseline": self.baseline, "metric": self.metric,
                "confidence": self.confidence, "seeds": self.seeds.tolist(),
                "rounds": self.rounds.tolist(), "log_ratio_per_seed": self.log_ratio.tolist(),
                "ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "p_value": self.p_value, "demonstrated": self.demonstrated}

    def verdict(self) -> str:
        """A sentence: the geometric-mean error ratio and whether its interval excludes 1."""
        n = int(self.seeds.size)
        head = (f"errors {self.ratio:.2f}x {self.baseline}'s over rounds "
                f"{self.rounds.min()}-{self.rounds.max()}") if self.rounds.size else "no paired rounds"
        if n < 2:
            return f"{head}; one seed only: no spread to judge it by"
        level = f"{100 * self.confidence:.0f} %"
        what = ("better" if self.ratio < 1 else "worse") if self.demonstrated else "no demonstrated difference"
        return f"{head} ({level} interval {self.ci_low:.2f}-{self.ci_high:.2f}, {n} seeds): {what}"


def curve_ratio(curves: LearningCurves, baseline: str = "random", metric: str = "force_rmse_meV_A",
                confidence: float = 0.95, first_round: int = 1) -> dict[str, CurveRatio]:
    """Every other strategy against ``baseline`` over whole curves, paired by seed.

    Per seed, ln(e_strategy / e_baseline) is averaged over the rounds from ``first_round``
    on that both runs have (round 0 is the shared random initial set); the per-seed means
    give a paired t interval, reported as a geometric-mean error ratio.  Errors must be
    positive.  Returns ``{strategy: CurveRatio}`` in the order of ``curves.strategies``.
    """
    out = {}
    for s, seeds, a, b in _paired_curves(curves, baseline, metric, confidence):
        n_rounds = a.shape[1]
        a, b = a[:, first_round:], b[:, first_round:]
        if np.any(a <= 0) or np.any(b <= 0):
            raise InputError(f"curve_ratio needs positive errors; {metric!r} has values <= 0")
        with np.errstate(invalid="ignore"):
            lr = np.log(a / b)
        ok = np.isfinite(lr)
        rounds = np.arange(first_round, n_rounds)[ok.any(axis=0)]
        keep = ok.any(axis=1)
        per_seed = np.array([lr[i][ok[i]].mean() for i in np.flatnonzero(keep)])
        mean, lo, hi, p = _paired_stats(per_seed, confidence)
        out[s] = CurveRatio(strategy=s, baseline=baseline, metric=metric, confidence=float(confidence),
                            seeds=seeds[keep], rounds=rounds.astype(np.int64), log_ratio=per_seed,
                            ratio=float(np.exp(mean)), ci_low=float(np.exp(lo)),
                            ci_high=float(np.exp(hi)), p_value=p)
    return out


@dataclass(frozen=True)
class LabelRatio(CurveRatio):
    """Labels a strategy needs for the baseline's error, as a ratio (see the module docstring).

    The fields are those of :class:`CurveRatio`, with ``log_ratio`` the per-seed
    ln(labels of the strategy / labels of the baseline) at equal error, plus

    slope : ndarray [n_seeds]
        The common power-law exponent b of each seed's fit (ln e per ln n; < 0 when
        the error falls with more labels).
    """

    slope: np.ndarray = None  # type: ignore[assignment]

    def meets(self, fraction: float = 1 / 3) -> bool:
        """The whole confidence interval lies at or below ``fraction`` of the baseline's labels."""
        return bool(self.ci_high <= fraction)

    def to_dict(self) -> dict:
        """JSON-friendly fields."""
        return {**super().to_dict(), "slope_per_seed": self.slope.tolist(),
                "label_ratio": self.ratio}

    def verdict(self) -> str:
        """A sentence: the label ratio at equal error and whether its interval excludes 1."""
        n = int(self.seeds.size)
        if not self.rounds.size or n == 0:
            return "no paired rounds with a falling error"
        head = (f"{self.ratio:.2f}x {self.baseline}'s labels for the same error "
                f"(power laws over rounds {self.rounds.min()}-{self.rounds.max()})")
        if n < 2:
            return f"{head}; one seed only: no spread to judge it by"
        level = f"{100 * self.confidence:.0f} %"
        what = (("fewer" if self.ratio < 1 else "more") + " labels") if self.demonstrated \
            else "no demonstrated difference"
        return f"{head} ({level} interval {self.ci_low:.2f}-{self.ci_high:.2f}, {n} seeds): {what}"


def _common_slope_fit(x_s: np.ndarray, y_s: np.ndarray, x_b: np.ndarray, y_b: np.ndarray
                      ) -> tuple[float, float, float]:
    """Least squares of y = a_s [strategy] + a_b [baseline] + b x -> (a_s, a_b, b)."""
    design = np.zeros((x_s.size + x_b.size, 3))
    design[:x_s.size, 0] = 1.0
    design[x_s.size:, 1] = 1.0
    design[:, 2] = np.concatenate([x_s, x_b])
    coef, *_ = np.linalg.lstsq(design, np.concatenate([y_s, y_b]), rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def label_ratio(curves: LearningCurves, baseline: str = "random", metric: str = "force_rmse_meV_A",
                confidence: float = 0.95, first_round: int = 1) -> dict[str, LabelRatio]:
    """Labels every other strategy of ``curves`` needs for ``baseline``'s error, paired by seed.

    Per seed, a common-slope power law is fitted to both curves over the rounds from
    ``first_round`` on (at least two finite rounds each); a seed whose slope is not
    negative (the error does not fall with labels) gives no ratio.  Errors must be
    positive.  Returns ``{strategy: LabelRatio}`` in the order of ``curves.strategies``.
    """
    out = {}
    ref_n = np.asarray(curves.curve(baseline, metric)["n_labelled"], dtype=float) \
        if baseline in curves.strategies else None
    for s, seeds, a, b in _paired_curves(curves, baseline, metric, confidence):
        n_rounds = a.shape[1]
        n_lab = np.asarray(curves.curve(s, metric)["n_labelled"], dtype=float)[:n_rounds]
        n_ref = ref_n[:n_rounds]
        if np.any(a[np.isfinite(a)] <= 0) or np.any(b[np.isfinite(b)] <= 0):
            raise InputError(f"label_ratio needs positive errors; {metric!r} has values <= 0")
        rounds = np.arange(first_round, n_rounds)
        per_seed, slopes, kept = [], [], []
        for i, sd in enumerate(seeds):
            ys, yb = a[i, first_round:], b[i, first_round:]
            ok_s, ok_b = np.isfinite(ys), np.isfinite(yb)
            if ok_s.sum() < 2 or ok_b.sum() < 2:
                continue
            a_s, a_b, slope = _common_slope_fit(np.log(n_lab[first_round:][ok_s]), np.log(ys[ok_s]),
                                                np.log(n_ref[first_round:][ok_b]), np.log(yb[ok_b]))
            if not slope < 0:
                continue
            per_seed.append((a_b - a_s) / slope)
            slopes.append(slope)
            kept.append(sd)
        per_seed_arr = np.asarray(per_seed, dtype=float)
        mean, lo, hi, p = _paired_stats(per_seed_arr, confidence)
        out[s] = LabelRatio(strategy=s, baseline=baseline, metric=metric, confidence=float(confidence),
                            seeds=np.asarray(kept, dtype=np.int64),
                            rounds=rounds.astype(np.int64) if kept else np.zeros(0, np.int64),
                            log_ratio=per_seed_arr, ratio=float(np.exp(mean)), ci_low=float(np.exp(lo)),
                            ci_high=float(np.exp(hi)), p_value=p, slope=np.asarray(slopes, dtype=float))
    return out
