"""Automatic symmetry-function sets and CUR / correlation selection."""
from __future__ import annotations

import numpy as np
import pytest
from ase.spacegroup import crystal

from mdmlkit.descriptors import ACSF, SymmetryFunction, SymmetryFunctionSet, generate_set, select_functions
from mdmlkit.descriptors.generate import correlation_prune, cur_select, radial_grid, reconstruction_error


def pyrochlore(a=10.8, x=0.33):
    return crystal(["La", "Zr", "O", "O"],
                   basis=[(0.5, 0.5, 0.5), (0, 0, 0), (x, 0.125, 0.125), (0.375, 0.375, 0.375)],
                   spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90])


@pytest.fixture(scope="module")
def frames():
    out = []
    for k, (amp, a) in enumerate([(0.05, 10.8), (0.15, 10.7), (0.25, 10.95)]):
        at = pyrochlore(a)
        at.rattle(amp, seed=k)
        out.append(at)
    return out


def test_grids_follow_published_rules():
    rs, eta = radial_grid(5, 6.0, "shifted", "gastegger2018", r_lower=1.0)
    assert np.allclose(rs, [1.0, 2.25, 3.5, 4.75, 6.0]) and np.allclose(eta, 1 / (2 * 1.25 ** 2))
    rs, eta = radial_grid(4, 6.0, "centred", "gastegger2018", r_lower=1.5)
    assert np.all(rs == 0) and np.allclose(eta, 1 / (2 * np.linspace(1.5, 6, 4) ** 2))
    rs, eta = radial_grid(4, 6.0, "centred", "imbalzano2018")
    assert np.all(rs == 0) and np.allclose(eta, (3 ** (np.arange(4) / 3) / 6.0) ** 2)
    rs, eta = radial_grid(4, 6.0, "shifted", "imbalzano2018")
    ext = 6.0 / 4 ** (np.arange(5) / 4)
    assert np.allclose(rs, ext[1:][::-1])
    assert np.allclose(eta, (1 / (ext[:-1] - ext[1:]) ** 2)[::-1])
    assert np.all(np.diff(rs) > 0)
    with pytest.raises(ValueError):
        radial_grid(4, 6.0, "centred", "gastegger2018", r_lower=0.0)
    with pytest.raises(ValueError):
        radial_grid(4, 6.0, "wrong")


@pytest.mark.parametrize("angular_type", [3, 9])
def test_generate_counts_and_roundtrip(angular_type):
    el = ["La", "Zr", "O"]
    sfs = generate_set(el, rc=6.0, n_radial=5, n_angular=2, zetas=(1, 2, 4),
                                       angular_type=angular_type, cutoff_type=6, alpha=0.1)
    for c in el:
        fs = sfs.functions[c]
        assert len(fs) == 3 * 5 + 6 * 2 * 3 * 2
        assert {f.type for f in fs} == {2, angular_type}
        assert all(f.rc == 6.0 for f in fs)
        assert len(set(fs)) == len(fs)                      # no duplicates
    assert SymmetryFunctionSet.from_lines(sfs.to_input_nn_lines(), el, 6, 0.1) == sfs


def test_generate_centred_mode():
    sfs = generate_set(["Zr", "O"], rc=5.0, n_radial=4, mode="centred",
                                       angular_type=0)
    assert all(f.rs == 0 and not f.is_angular for f in sfs)
    assert len(sfs) == 2 * 2 * 4


def test_pruning_removes_duplicate_and_constant(frames):
    base = generate_set(["La", "Zr", "O"], rc=6.0, n_radial=4, n_angular=1,
                                        zetas=(1,))
    dup = base.functions["O"][5]
    constant = SymmetryFunction("O", 2, "O", eta=200.0, rs=0.1, rc=6.0)   # no O-O at 0.1 Å
    # an exact duplicate cannot sit in the same set twice only by accident: build it on purpose
    funcs = [f for f in base] + [constant, SymmetryFunction(**{
        **{k: getattr(dup, k) for k in ("central", "type", "e1", "e2", "eta", "rs", "rc",
                                        "lambda_", "zeta")}})]
    sfs = SymmetryFunctionSet(base.elements, funcs, base.cutoff_type, base.alpha)
    assert sum(f == dup for f in sfs.functions["O"]) == 2
    feats = ACSF(sfs).compute(frames)
    X = feats["O"]
    cols = [i for i, f in enumerate(sfs.functions["O"]) if f == dup]
    assert np.array_equal(X[:, cols[0]], X[:, cols[1]])
    kept = select_functions(sfs, method="correlation", threshold=0.999, features=feats)
    assert sum(f == dup for f in kept.functions["O"]) == 1
    assert constant not in kept.functions["O"]
    cur = select_functions(sfs, n_select=12, method="cur", features=feats)
    assert sum(f == dup for f in cur.functions["O"]) <= 1
    assert constant not in cur.functions["O"] and cur.n_features["O"] == 12


def test_correlation_threshold_and_cap():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 200))
    X = np.stack([a, a + 0.01 * b, b, c, 0.5 * c - 0.001 * a, np.ones(200)], axis=1)
    kept = correlation_prune(X, threshold=0.9)
    assert kept in ([0, 2, 3], [1, 2, 3], [0, 2, 4], [1, 2, 4])
    Z = (X[:, kept] - X[:, kept].mean(0)) / X[:, kept].std(0)
    corr = np.abs(np.corrcoef(Z.T)) - np.eye(len(kept))
    assert corr.max() <= 0.9
    assert len(correlation_prune(X, threshold=0.9, n_select=2)) == 2


def test_cur_keeps_information_better_than_random(frames):
    sfs = generate_set(["La", "Zr", "O"], rc=6.0, n_radial=6, n_angular=2)
    feats = ACSF(sfs).compute(frames)
    X = feats["O"]
    n = 8
    chosen = cur_select(X, n)
    assert len(set(chosen)) == n
    err = reconstruction_error(X, chosen)
    rng = np.random.default_rng(0)
    rand = [reconstruction_error(X, rng.choice(X.shape[1], n, replace=False)) for _ in range(30)]
    assert err < np.percentile(rand, 10)
    assert reconstruction_error(X, range(X.shape[1])) < 1e-8
    # exact rank: CUR on a rank-3 matrix stops selecting after 3 columns
    rng = np.random.default_rng(1)
    low = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 9))
    sel = cur_select(low, 6)
    assert len(sel) == 3 and reconstruction_error(low, sel) < 1e-8


def test_select_from_frames_returns_set(frames):
    sfs = generate_set(["La", "Zr", "O"], rc=6.0, n_radial=3, n_angular=1,
                                       zetas=(1,))
    out = select_functions(sfs, frames[:1], n_select={"La": 4, "Zr": 5, "O": 6}, method="cur")
    assert out.n_features == {"La": 4, "Zr": 5, "O": 6}
    assert all(f in sfs.functions[el] for el in out.elements for f in out.functions[el])
    with pytest.raises(ValueError, match="n_select"):
        select_functions(sfs, frames[:1], method="cur")


def test_long_radial_functions_are_the_shipped_model_s():
    """Per element pair: eta 0 plus Gaussians (eta 1 Å^-2) every 1 Å from 5 Å to rc - 1;
    exactly the 9 Å functions of the shipped La2Zr2O7 model."""
    from pathlib import Path

    from mdmlkit.descriptors import long_radial_functions

    els = ["La", "Zr", "O"]
    fs = long_radial_functions(els, 9.0)
    assert len(fs) == 3 * 3 * 5 and all(f.type == 2 and f.rc == 9.0 for f in fs)
    assert sorted({(f.eta, f.rs) for f in fs}) == [(0.0, 0.0)] + [(1.0, r) for r in (5.0, 6.0, 7.0, 8.0)]
    shipped = SymmetryFunctionSet.from_input_nn(
        Path(__file__).resolve().parents[2] / "models" / "la2zr2o7" / "input.nn")
    assert {f for f in shipped if f.rc == 9.0} == set(fs)
    assert len(long_radial_functions(els, 6.5)) == 9 * 2          # eta 0 and rs = 5 Å
    with pytest.raises(ValueError, match="r_from < rc_long"):
        long_radial_functions(els, 4.0)


def test_pairwise_correlations_match_numpy():
    from mdmlkit.descriptors import pairwise_correlations

    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 5))
    X[:, 3] = 2.0                                # constant column: left out
    got = pairwise_correlations(X)
    keep = [0, 1, 2, 4]
    want = [abs(np.corrcoef(X[:, i], X[:, j])[0, 1]) for a, i in enumerate(keep) for j in keep[a + 1:]]
    assert np.allclose(got, want)
    assert np.allclose(pairwise_correlations(X, [1, 4]), [abs(np.corrcoef(X[:, 1], X[:, 4])[0, 1])])


def test_describe_counts_functions():
    from mdmlkit.descriptors import generate_set

    sfs = generate_set(["La", "O"], rc=6.0, n_radial=3, n_angular=1)
    for el in sfs.elements:
        line = sfs.describe(el)
        fs = sfs.functions[el]
        radial = {e: sum(not f.is_angular and f.e1 == e for f in fs) for e in sfs.elements}
        assert str(radial) in line
