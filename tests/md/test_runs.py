"""Plain MD runs (run_md): NVT/NVE against the heating driver and physics, NPT volume, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mdmlkit.errors import InputError
from mdmlkit.md.engine import Barostat
from mdmlkit.md.heating import heat
from mdmlkit.md.runs import run_md
from mdmlkit.md.trajectory import frame_table
from mdmlkit.systems.cu_clusters import make_cluster

pytest.importorskip("asap3")


@pytest.fixture(scope="module")
def cu55():
    return make_cluster(55, kind="icosahedron")


def test_nvt_run_is_the_isothermal_heating_protocol(cu55):
    """Same driver: run_md(nvt) reproduces heat() with t_start == t_end bit for bit."""
    a = run_md(cu55, "asap3", "nvt", temperature_K=500, steps=200, sample_every=20,
               friction=0.005, seed=2, progress=False)
    b = heat(cu55, "asap3", 500, 500, rate_K_per_ps=None, duration_ps=0.4, sample_every=20,
             seed=2, progress=False)
    assert len(a.frames) == 11
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa.positions, fb.positions)
    np.testing.assert_array_equal(frame_table(a.frames)["T_target"], 500.0)


def test_nve_energy_conservation(cu55):
    # velocity Verlet: total energy fluctuates by O(dt^2) and does not drift
    spread = {}
    for dt in (1.0, 2.0):
        res = run_md(cu55, "asap3", "nve", temperature_K=600, steps=int(4000 / dt),
                     timestep_fs=dt, sample_every=int(40 / dt), progress=False)
        t = frame_table(res.frames)
        spread[dt] = np.ptp(t["E_tot"])
        slope = np.polyfit(t["time_fs"] / 1000, t["E_tot"], 1)[0]       # eV/ps
        assert abs(slope) / 55 < 2e-5
        assert np.ptp(t["E_pot"]) > 50 * spread[dt]    # energy really flows between E_pot/E_kin
    assert spread[2.0] / 55 < 1e-4                      # eV/atom
    assert 2.0 < spread[2.0] / spread[1.0] < 8.0        # ~4 for a second-order integrator


@pytest.mark.parametrize("thermostat", ["langevin", "bussi"])
def test_thermostats_hold_the_target_temperature(cu55, thermostat):
    res = run_md(cu55, "asap3", "nvt", temperature_K=600, steps=8000, thermostat=thermostat,
                 friction=0.005, sample_every=40, progress=False, seed=4)
    T = frame_table(res.frames)["T_kinetic"][40:]
    # canonical kinetic-T fluctuation of 55 atoms is ~11 %; mean over ~160 frames
    assert abs(T.mean() - 600) < 45


@pytest.fixture(scope="module")
def cu_crystal():
    """108-atom fcc Cu, compressed by 2 % in lattice parameter from ASE's EMT value."""
    from asap3 import EMT
    from ase.eos import EquationOfState

    vols, ens = [], []
    for s in np.linspace(0.97, 1.03, 7):
        at = bulk("Cu", "fcc", a=3.6 * s, cubic=True)
        at.calc = EMT()
        vols.append(at.get_volume())
        ens.append(at.get_potential_energy())
    v0, _, _ = EquationOfState(vols, ens).fit()
    a0 = (v0 * 4 / 4) ** (1 / 3)                 # conventional cell of 4 atoms
    return bulk("Cu", "fcc", a=0.98 * a0, cubic=True).repeat(3), a0


def test_npt_relaxes_the_volume_to_the_zero_pressure_lattice(cu_crystal, tmp_path):
    start, a0 = cu_crystal
    res = run_md(start, "asap3", "npt", temperature_K=50, steps=1500, timestep_fs=2.0,
                 sample_every=25, barostat=Barostat(taup_fs=200.0), progress=False,
                 trajectory=tmp_path / "npt.extxyz")
    a = (res.volumes() / 27) ** (1 / 3)
    assert a[0] == pytest.approx(0.98 * a0)
    # 50 K: thermal expansion is ~0.1 %, so the mean ends near the 0 K EOS minimum
    assert abs(a[len(a) // 2:].mean() / a0 - 1) < 4e-3
    nvt = run_md(start, "asap3", "nvt", temperature_K=50, steps=100, sample_every=25,
                 progress=False)
    np.testing.assert_allclose(nvt.volumes(), start.get_volume())


def test_npt_resume_restores_the_cell(cu_crystal, tmp_path):
    start, _ = cu_crystal
    kw = dict(temperature_K=100, steps=400, sample_every=20, checkpoint_every=4, progress=False)
    ref = run_md(start, "asap3", "npt", trajectory=tmp_path / "ref.extxyz", **kw)
    path = tmp_path / "run.extxyz"

    def crash(frame):
        if frame.info["step"] == 220:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        run_md(start, "asap3", "npt", trajectory=path, callback=crash, **kw)
    res = run_md(start, "asap3", "npt", trajectory=path, **kw)
    assert res.resumed_from_step == 160
    np.testing.assert_array_equal(res.volumes(), ref.volumes())
    assert path.read_bytes() == (tmp_path / "ref.extxyz").read_bytes()


def test_initial_temperature(cu_crystal):
    start, _ = cu_crystal
    res = run_md(start, "asap3", "nve", temperature_K=300, initial_temperature_K=600, steps=10,
                 sample_every=10, progress=False)
    # Maxwell-Boltzmann draw at 600 K, then the centre-of-mass motion is removed
    assert res.frames[0].info["T_kinetic"] == pytest.approx(600, rel=0.25)


def test_bad_runs(cu55, cu_crystal):
    with pytest.raises(InputError, match="ensemble"):
        run_md(cu55, "asap3", "nph", progress=False)
    with pytest.raises(InputError, match="thermostat"):
        run_md(cu55, "asap3", "nvt", thermostat="nve", progress=False)
    with pytest.raises(InputError, match="periodic"):
        run_md(cu55, "asap3", "npt", steps=10, progress=False)
    with pytest.raises(InputError, match="barostat"):
        run_md(cu55, "asap3", "nvt", barostat=Barostat(), progress=False)
    with pytest.raises(InputError, match="steps"):
        run_md(cu55, "asap3", "nvt", steps=0, progress=False)
    with pytest.raises(InputError, match="taup_fs"):
        Barostat(taup_fs=-1.0)


def test_finished_run_is_resumed_only_with_the_same_settings(tmp_path):
    """A finished run_md trajectory is reused only when every setting matches (issue: no silent
    resume with other physics); overwrite=True reruns into the file."""
    from mdmlkit.errors import CheckpointMismatchError

    cu13 = make_cluster(13)
    path = tmp_path / "nvt.extxyz"
    kw = dict(steps=20, timestep_fs=2.0, sample_every=10, seed=3, trajectory=path, progress=False)
    first = run_md(cu13, "asap3", temperature_K=300.0, **kw)
    again = run_md(cu13, "asap3", temperature_K=300.0, **kw)
    assert again.skipped and len(again.frames) == len(first.frames)
    with pytest.raises(CheckpointMismatchError, match="t_start|t_end"):
        run_md(cu13, "asap3", temperature_K=500.0, **kw)
    with pytest.raises(CheckpointMismatchError, match="friction"):
        run_md(cu13, "asap3", temperature_K=300.0, friction=0.05, **kw)
    hot = run_md(cu13, "asap3", temperature_K=500.0, overwrite=True, **kw)
    assert not hot.skipped
    assert np.allclose(frame_table(hot.frames)["T_target"], 500.0)
