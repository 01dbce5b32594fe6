"""benchmarks/bench_vs_n2p2.py: its checks, and mdmlkit against n2p2 itself where the driver is built.

The n2p2 comparison runs only when ``make bench-n2p2`` (or ``bench_vs_n2p2.py --build-only``)
has built the timing driver into ``benchmarks/.cache/n2p2``; otherwise it skips.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mdmlkit.errors import ModelMismatchError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_vs_n2p2", ROOT / "benchmarks" / "bench_vs_n2p2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_peer_is_a_clean_skip(bench, tmp_path, capsys):
    with pytest.raises(bench.PeerUnavailable, match="no n2p2 source"):
        bench.build_n2p2(peer=tmp_path / "nowhere", cache=tmp_path / "cache")
    assert bench.main(["--peer", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.json")]) is None
    assert "SKIP bench_vs_n2p2" in capsys.readouterr().out
    assert not (tmp_path / "x.json").exists()


def test_refuses_mismatched_elements(bench):
    atoms = Atoms("LaCu", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[8, 8, 8], pbc=True)
    with pytest.raises(ModelMismatchError, match=r"Cu"):
        bench._check_elements(bench.SHIPPED_DIRS["shipped_fast"], atoms, "shipped_fast")


def test_agreement_check(bench):
    f = np.array([[1.0, -2.0, 0.5]])
    assert bench.check_agreement(-10.0, f, -10.0 * (1 + 1e-12), f + 1e-12, "ok")["energy_rel_diff"] < 1e-11
    with pytest.raises(SystemExit, match="disagree"):
        bench.check_agreement(-10.0, f, -10.0, f + 1e-6, "forces off")
    with pytest.raises(SystemExit, match="disagree"):
        bench.check_agreement(-10.0, f, -10.001, f, "energy off")


def test_cells(bench):
    cells = bench.pyrochlore_cells((88, 704))
    assert {n: len(a) for n, a in cells.items()} == {88: 88, 704: 704}
    assert sorted(set(cells[88].get_chemical_symbols())) == ["La", "O", "Zr"]


@pytest.mark.skipif(not (ROOT / "benchmarks" / ".cache" / "n2p2" / "n2p2_timer").is_file(),
                    reason="n2p2 timing driver not built (make bench-n2p2 builds it from ../shared/peers/n2p2)")
def test_mdmlkit_matches_n2p2_on_the_shipped_fast_model(bench, tmp_path):
    from mdmlkit.io.n2p2 import write_input_data

    atoms = bench.pyrochlore_cells((88,))[88]
    write_input_data(atoms, tmp_path / "input.data")
    model_dir = bench.SHIPPED_DIRS["shipped_fast"]
    peer = bench.N2P2Peer(bench.CACHE / "n2p2_timer", model_dir, tmp_path / "input.data")
    side = bench.MdmlkitSide(model_dir, atoms)
    agree = bench.check_agreement(peer.energy, peer.forces, side.energy, side.forces, "shipped_fast")
    assert agree["energy_rel_diff"] < 1e-10 and agree["forces_max_rel_diff"] < 1e-7
    times, energy = peer.time(2)
    assert len(times) == 2 and min(times) > 0 and energy == peer.energy and peer.n_atoms == 88
    np.testing.assert_array_equal(peer.close(), peer.forces)


@pytest.mark.skipif(not (ROOT / "benchmarks" / ".cache" / "n2p2" / "n2p2_timer").is_file(),
                    reason="n2p2 timing driver not built (make bench-n2p2 builds it from ../shared/peers/n2p2)")
def test_mdmlkit_matches_n2p2_on_the_dense_type3_set(bench, tmp_path):
    """n2p2's usual angular grid (runs of functions that share their radial factors in the
    triplet kernels): n2p2's own energy and forces."""
    from mdmlkit.io.n2p2 import write_input_data

    atoms = bench.pyrochlore_cells((88,))[88]
    write_input_data(atoms, tmp_path / "input.data")
    model_dir = bench.classic_type3_model(tmp_path / "dense", bench.TYPE3_ANGULAR["dense_type3"])
    peer = bench.N2P2Peer(bench.CACHE / "n2p2_timer", model_dir, tmp_path / "input.data")
    side = bench.MdmlkitSide(model_dir, atoms)
    assert side.calc._fused.plan.n_triplet_functions == 3 * 96
    agree = bench.check_agreement(peer.energy, peer.forces, side.energy, side.forces, "dense_type3")
    assert agree["energy_rel_diff"] < 1e-10 and agree["forces_max_rel_diff"] < 1e-7
    peer.close()
