"""evaluate(): error metrics against a direct numpy computation; Trainer parameters (sklearn clone)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from cuni_data import ELEMENTS, emt_frames
from sklearn.base import clone

from mdmlkit.descriptors import AtomsBatch, generate_set
from mdmlkit.errors import InputError, MissingLabelError
from mdmlkit.potential import HDNNP, Trainer, evaluate


@pytest.fixture(scope="module")
def model():
    m = HDNNP(generate_set(ELEMENTS, rc=4.0, n_radial=3, n_angular=1), hidden=(6,), seed=1)
    m.fit_scaling(emt_frames(4, seed=5))
    return m


@pytest.fixture(scope="module")
def frames():
    fr = emt_frames(6, seed=9)
    for k, a in enumerate(fr):
        a.info["kind"] = "even" if k % 2 == 0 else "odd"
    return fr


def direct(model, frames):
    """Per-structure energies (eV) and forces (eV/Å), one structure at a time."""
    e, f = [], []
    for a in frames:
        b = AtomsBatch.from_atoms([a], model.elements, model.cutoff)
        ei, fi = model.energy_and_forces(b)
        e.append(float(ei[0]))
        f.append(fi.detach().numpy())
    return np.array(e), f


def test_metrics_match_numpy(model, frames):
    res = evaluate(model, frames, batch_size=4)
    e_pred, f_pred = direct(model, frames)
    e_ref = np.array([a.get_potential_energy() for a in frames])
    n = np.array([len(a) for a in frames])
    de = (e_pred - e_ref) / n
    df = np.concatenate(f_pred) - np.concatenate([a.get_forces() for a in frames])
    assert res["n_structures"] == len(frames)
    assert res["energy_rmse_meV_atom"] == pytest.approx(1000 * np.sqrt(np.mean(de ** 2)), rel=1e-9)
    assert res["energy_mae_meV_atom"] == pytest.approx(1000 * np.mean(np.abs(de)), rel=1e-9)
    assert res["force_rmse_eV_A"] == pytest.approx(np.sqrt(np.mean(df ** 2)), rel=1e-9)
    assert res["force_rmse_meV_A"] == pytest.approx(1000 * np.sqrt(np.mean(df ** 2)), rel=1e-9)
    assert res["force_mae_meV_A"] == pytest.approx(1000 * np.mean(np.abs(df)), rel=1e-9)
    np.testing.assert_allclose(res["energy_pred"], e_pred, rtol=1e-12)
    np.testing.assert_allclose(res["energy_pred_per_atom"], e_pred / n, rtol=1e-12)
    per = [np.sqrt(np.mean((fp - a.get_forces()) ** 2)) for fp, a in zip(f_pred, frames)]
    np.testing.assert_allclose(res["force_rmse_per_structure_meV_A"], 1000 * np.array(per), rtol=1e-9)
    even = np.arange(len(frames)) % 2 == 0
    assert res["by_kind"]["even"]["energy_rmse_meV_atom"] == pytest.approx(
        1000 * np.sqrt(np.mean(de[even] ** 2)), rel=1e-9)
    df_even = np.concatenate([f_pred[k] - frames[k].get_forces() for k in np.flatnonzero(even)])
    assert res["by_kind"]["even"]["force_mae_eV_A"] == pytest.approx(np.mean(np.abs(df_even)), rel=1e-9)


def test_trainer_evaluate_is_evaluate(model, frames):
    a = Trainer(model, progress=False).evaluate(frames)
    b = evaluate(model, frames)
    assert a.keys() == b.keys() and a["energy_rmse_meV_atom"] == b["energy_rmse_meV_atom"]


def test_energy_only_labels_and_missing_energy(model):
    fr = emt_frames(2, seed=3)
    a = fr[0].copy()
    a.calc = SinglePointCalculator(a, energy=fr[0].get_potential_energy())
    res = evaluate(model, [a])
    assert res["forces_ref"] is None and "force_rmse_eV_A" not in res
    b = fr[1].copy()
    with pytest.raises(MissingLabelError, match="test set: structure 0"):
        evaluate(model, [b], source="test set")


def test_trainer_follows_sklearn_parameters(model):
    t = Trainer(model, lr=3e-3, lr_schedule="exponential", batch_size=4, max_epochs=7, callbacks=[print],
                progress=False)
    c = clone(t)
    assert c is not t and c.model is not t.model
    params = {k: v for k, v in c.get_params(deep=False).items() if k not in ("model", "callbacks")}
    assert params == {k: v for k, v in t.get_params(deep=False).items() if k not in ("model", "callbacks")}
    assert not hasattr(c, "history_")
    torch.testing.assert_close(next(c.model.parameters()), next(model.parameters()))
    c.set_params(lr=1e-4)
    assert c.lr == 1e-4 and t.lr == 3e-3
    assert "model" not in t.hyperparameters() and t.hyperparameters()["max_epochs"] == 7
    with pytest.raises(InputError, match="lr_schedule"):
        Trainer(model, lr_schedule="cosine")
