"""Caloric curves, heat capacity, melting temperature, Lindemann index."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.units import kB

from mdmlkit.errors import EmptyTrajectoryError, InconsistentFramesError
from mdmlkit.landscape import thermo


def _table(T, E_pot, n_atoms=10, run="r"):
    T = np.asarray(T, float)
    return {"T_target": T, "E_pot": np.asarray(E_pot, float),
            "E_tot": np.asarray(E_pot, float) + 1.5 * n_atoms * kB * T,
            "n_atoms": np.full(len(T), n_atoms), "run_id": np.array([run] * len(T))}


def test_harmonic_solid_has_dulong_petit_heat_capacity():
    # E_pot = 3/2 N kB T (+ const) and E_kin = 3/2 N kB T  ->  C = 3 kB per atom exactly
    T = np.linspace(300, 800, 501)
    curve = thermo.caloric_curve(_table(T, 5.0 + 1.5 * 10 * kB * T), bin_width=10)
    Tc, C = curve.heat_capacity(smooth_K=30)
    np.testing.assert_allclose(C, 3.0, rtol=1e-9)
    _, Cp = curve.heat_capacity(smooth_K=30, energy="E_pot")
    np.testing.assert_allclose(Cp, 1.5, rtol=1e-9)


def test_melting_temperature_at_the_latent_heat_step():
    T = np.linspace(300, 1300, 2001)
    rng = np.random.default_rng(0)
    latent, Tm, width = 2.0, 905.0, 15.0
    E = 1.5 * 10 * kB * T + latent / (1 + np.exp(-(T - Tm) / width)) + rng.normal(0, 0.01, T.size)
    mp = thermo.caloric_curve(_table(T, E), bin_width=10).melting_temperature(smooth_K=20)
    assert abs(mp.T_melt - Tm) < 8
    # peak height ~ dE/dT of the step: latent/(4 width) / (N kB) + 3
    assert mp.peak == pytest.approx(3 + latent / (4 * width) / (10 * kB), rel=0.25)
    assert "T_melt=" in repr(mp)


def test_runs_are_averaged_bin_by_bin():
    T = np.linspace(300, 600, 301)
    a, b = _table(T, 1.0 + 0.01 * T, run="a"), _table(T[::-1], 3.0 + 0.01 * T[::-1], run="b")
    curve = thermo.caloric_curve([a, b], bin_width=20)
    np.testing.assert_allclose(curve.E_pot, 2.0 + 0.01 * curve.T, atol=0.06)
    np.testing.assert_allclose(curve.E_pot_std, 1.0, atol=1e-9)
    assert curve.n_runs == 2 and curve.counts.sum() == 2 * 301
    assert "n_runs=2" in repr(curve)


def test_caloric_curve_bad_input():
    with pytest.raises(EmptyTrajectoryError, match="at least 2"):
        thermo.caloric_curve(_table([300.0], [1.0]))
    with pytest.raises(InconsistentFramesError):
        thermo.caloric_curve([_table([1, 2, 3], [1, 2, 3]),
                              _table([1, 2, 3], [1, 2, 3], n_atoms=11)])
    with pytest.raises(EmptyTrajectoryError):
        thermo.caloric_curve([])


def _lindemann_loops(pos):
    """Reference implementation with explicit loops (tiny systems only)."""
    F, N, _ = pos.shape
    d = np.zeros(N)
    for i in range(N):
        for j in range(N):
            if i != j:
                r = np.linalg.norm(pos[:, i] - pos[:, j], axis=1)
                d[i] += np.sqrt((r**2).mean() - r.mean() ** 2) / r.mean()
    return d / (N - 1)


def test_lindemann_matches_loop_reference_and_is_invariant():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 6, (7, 3))
    pos = base[None] + rng.normal(0, 0.1, (30, 7, 3))
    res = thermo.lindemann_index(pos, window=10, temperatures=np.linspace(100, 400, 30))
    for w, s in enumerate(range(0, 21, 10)):
        np.testing.assert_allclose(res.delta_atoms[w], _lindemann_loops(pos[s:s + 10]), rtol=1e-10)
    np.testing.assert_allclose(res.delta, res.delta_atoms.mean(axis=1))
    # rigid motions of the whole cluster (different per frame) change nothing
    from scipy.spatial.transform import Rotation
    R = Rotation.random(30, random_state=2).as_matrix()
    moved = np.einsum("fij,fnj->fni", R, pos) + rng.normal(0, 5, (30, 1, 3))
    res2 = thermo.lindemann_index(moved, window=10, temperatures=np.linspace(100, 400, 30))
    np.testing.assert_allclose(res2.delta, res.delta, rtol=1e-8)
    # a perfectly rigid cluster has zero index
    rigid = thermo.lindemann_index(np.repeat(base[None], 12, 0), window=6,
                                   temperatures=np.ones(12))
    np.testing.assert_allclose(rigid.delta, 0.0, atol=1e-7)


def test_lindemann_threshold_crossing_and_frames_input():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 8, (12, 3))
    amp = np.where(np.arange(60) < 30, 0.02, 0.6)      # "melts" at frame 30
    pos = base[None] + amp[:, None, None] * rng.normal(size=(60, 12, 3))
    frames = []
    for k, p in enumerate(pos):
        a = Atoms("Cu12", positions=p)
        a.info["T_target"] = 500.0 + 10 * k
        frames.append(a)
    res = thermo.lindemann_index(frames, window=10)
    assert res.delta[:3].max() < 0.02 and res.delta[3:].min() > 0.1
    mp = res.melting_temperature(0.1)
    assert res.T[2] < mp.T_melt < res.T[3]
    assert "windows" in repr(res)
    with pytest.raises(EmptyTrajectoryError):
        thermo.lindemann_index(pos[:5], window=10)


@pytest.mark.slow
def test_cu147_icosahedron_melts_between_800_and_1100_K():
    """Physics: Cu147 (Mackay icosahedron, asap3 EMT) heated at 5 K/ps melts at ~950 K."""
    pytest.importorskip("asap3")
    from mdmlkit.md.heating import heat
    from mdmlkit.systems.cu_clusters import make_cluster

    res = heat(make_cluster(147, kind="icosahedron"), "asap3", 300, 1300, rate_K_per_ps=5,
               sample_every=100, seed=0, progress=False)
    curve = thermo.caloric_curve(res, bin_width=10)
    mp = curve.melting_temperature(smooth_K=30)
    assert 800 < mp.T_melt < 1100
    T, C = curve.heat_capacity(smooth_K=30)
    solid = (T > 350) & (T < 700)
    assert 2.7 < C[solid].mean() < 4.2        # Dulong-Petit 3 kB plus anharmonicity
    assert mp.peak > 2.5 * C[solid].mean()    # a real latent-heat peak
    lind = thermo.lindemann_index(res.frames, window=50)
    assert lind.delta[0] < 0.05               # solid
    assert 800 < lind.melting_temperature(0.1).T_melt < 1100


def _noisy_runs(E_of_T, n_atoms=13, runs=2, sigma_eV=0.5, T0=300.0, T1=1400.0, n=276, seed=0):
    """Heating runs like the quick Cu13 ramp: per-frame E_tot noise of a small cluster."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(runs):
        T = np.linspace(T0, T1, n)
        E_tot = E_of_T(T) + rng.normal(0, sigma_eV, n)
        out.append({"T_target": T, "E_pot": E_tot - 1.5 * n_atoms * kB * T, "E_tot": E_tot,
                    "n_atoms": np.full(n, n_atoms), "run_id": np.array([f"r{r}"] * n)})
    return out


def test_noisy_caloric_curve_gives_no_negative_heat_capacity():
    """A fixed 30 K window differentiates frame noise into C < 0 (the quick-run artefact);
    the automatic window recovers the analytic C(T) of E = 3 N kB T + L sigmoid((T - Tm)/w)."""
    N, L, Tm, w = 13, 1.5, 900.0, 40.0

    def E(T):
        return 3 * N * kB * T + L / (1 + np.exp(-(T - Tm) / w))

    def C_exact(T):
        s = 1 / (1 + np.exp(-(T - Tm) / w))
        return 3 + L * s * (1 - s) / w / (N * kB)

    curve = thermo.caloric_curve(_noisy_runs(E, N), bin_width=10)
    _, C30 = curve.heat_capacity(smooth_K=30)
    assert C30.min() < 0                                     # the artefact
    width = thermo.auto_smoothing(curve)
    assert width > 30
    T, C, err = curve.heat_capacity(return_error=True)
    inner = (T > T.min() + width) & (T < T.max() - width)
    assert C[inner].min() > 0
    # smoothed analytic C: the fit window blurs the peak, so compare with the exact C
    # convolved with the same Gaussian
    Tf = np.linspace(T.min() - 4 * width, T.max() + 4 * width, 4001)
    g = np.exp(-0.5 * ((Tf[None, :] - T[:, None]) / width) ** 2)
    C_blur = (g * C_exact(Tf)).sum(1) / g.sum(1)
    assert np.median(np.abs(C - C_blur)[inner]) < 3 * np.median(err[inner])
    mp = curve.melting_temperature()
    assert mp.ok and abs(mp.T_melt - Tm) < 40 and mp.smooth_K == width


def test_heat_capacity_error_matches_scatter_over_seeds():
    N = 13
    Cs, errs = [], []
    for seed in range(30):
        curve = thermo.caloric_curve(_noisy_runs(lambda T: 3 * N * kB * T, N, seed=seed), bin_width=10)
        _, C, e = curve.heat_capacity(smooth_K=60, return_error=True)
        Cs.append(C[len(C) // 2]); errs.append(e[len(C) // 2])
    assert np.mean(Cs) == pytest.approx(3.0, abs=3 * np.std(Cs) / np.sqrt(30))
    assert np.mean(errs) == pytest.approx(np.std(Cs), rel=0.35)


def test_peak_at_the_end_of_the_ramp_is_no_melting_point():
    T = np.linspace(300, 1400, 2201)
    N, L, Tm, w = 10, 2.0, 1390.0, 15.0       # melting just where the ramp stops
    E = 1.5 * N * kB * T + L / (1 + np.exp(-(T - Tm) / w))
    mp = thermo.caloric_curve(_table(T, E, n_atoms=N), bin_width=10).melting_temperature(smooth_K=20)
    assert not mp.ok and np.isnan(mp.T_melt) and np.isnan(mp.peak)
    assert "no C peak inside the ramp" in mp.flag and "extend T_END" in mp.flag
    assert mp.T_peak > 1300 and "none" in repr(mp)


def test_negative_heat_capacity_is_flagged():
    T = np.linspace(300, 1300, 2001)
    N = 10
    # E_pot falls over 700-800 K (C < 0 there), with a genuine peak at 1000 K
    E = (1.5 * N * kB * T - 0.4 / (1 + np.exp(-(T - 750) / 15))
         + 2.0 / (1 + np.exp(-(T - 1000) / 15)))
    mp = thermo.caloric_curve(_table(T, E, n_atoms=N), bin_width=10).melting_temperature(smooth_K=20)
    assert not mp.ok and mp.flag.startswith("C < 0")
    import re

    T_neg = float(re.search(r"k_B/atom at (\d+) K", mp.flag).group(1))
    assert 700 < T_neg < 800
