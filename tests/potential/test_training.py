"""Trainer: learning on EMT-labelled Cu/Ni data, loss gradients, determinism, resume, validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from cuni_data import ELEMENTS, emt_frames

from mdmlkit.descriptors import AtomsBatch, generate_set
from mdmlkit.errors import AtomsTooCloseError, MissingLabelError, NonFiniteError, UnknownElementError
from mdmlkit.potential import HDNNP
from mdmlkit.potential.data import concatenate_batches
from mdmlkit.potential.training import CHECKPOINT_NAME, LiveLossPlot, Trainer, energy_force_loss


@pytest.fixture(scope="module")
def sfs():
    return generate_set(ELEMENTS, rc=4.5, n_radial=4, n_angular=1)   # 20 functions per element


@pytest.fixture(scope="module")
def small_data():
    return emt_frames(12, seed=3), emt_frames(4, seed=4)


def make_model(sfs, seed=0, hidden=(8, 8)):
    return HDNNP(sfs, hidden=hidden, seed=seed)


def strip_time(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- learning


def composition_baseline(train, val):
    """Energy RMSE (meV/atom) of a per-element linear fit, independent of the model code."""
    def counts(frames):
        return np.array([[a.get_chemical_symbols().count(e) for e in ELEMENTS] for a in frames])

    e_tr = np.array([a.get_potential_energy() for a in train])
    e0 = np.linalg.lstsq(counts(train), e_tr, rcond=None)[0]
    e_va = np.array([a.get_potential_energy() for a in val])
    n = np.array([len(a) for a in val])
    return 1000 * np.sqrt(np.mean(((counts(val) @ e0 - e_va) / n) ** 2))


def test_training_beats_untrained_model_and_baselines():
    # EMT is a pair-density (embedded-atom-like) model: radial functions describe it well
    sfs = generate_set(ELEMENTS, rc=4.5, n_radial=8, n_angular=0)
    train, val = emt_frames(64, seed=0), emt_frames(16, seed=1)
    model = make_model(sfs, hidden=(16, 16))
    untrained = Trainer(model, max_epochs=0, progress=False).fit(train).evaluate(val)
    trainer = Trainer(model, lr=1e-2, lr_schedule="exponential", lr_gamma=0.93, force_weight=0.3,
                      batch_size=8, max_epochs=40, patience=None, progress=False)
    trainer.fit(train, val)
    res = trainer.evaluate(val)

    e_base = composition_baseline(train, val)                       # reference energies only (~40)
    f_base = 1000 * np.sqrt(np.mean(np.concatenate([a.get_forces() for a in val]) ** 2))  # F = 0 (~900)
    assert res["energy_rmse_meV_atom"] < 0.3 * e_base               # typically ~5 meV/atom
    assert res["energy_rmse_meV_atom"] < 0.2 * untrained["energy_rmse_meV_atom"]
    assert res["force_rmse_meV_A"] < 0.15 * f_base                  # typically ~45 meV/Å
    assert res["force_rmse_meV_A"] < 0.15 * untrained["force_rmse_meV_A"]
    assert res["force_rmse_eV_A"] == pytest.approx(res["force_rmse_meV_A"] / 1000)

    # history bookkeeping agrees with an independent evaluation of the restored best weights
    h = trainer.history_
    assert [r["epoch"] for r in h] == list(range(1, 41))
    assert h[-1]["lr"] == pytest.approx(1e-2 * 0.93 ** 39)
    best = h[trainer.best_epoch_ - 1]
    assert best["val_loss"] == min(r["val_loss"] for r in h)
    assert res["energy_rmse_meV_atom"] == pytest.approx(best["val_energy_rmse_meV_atom"], rel=1e-8)
    assert res["force_rmse_meV_A"] == pytest.approx(best["val_force_rmse_meV_A"], rel=1e-8)
    assert h[-1]["train_loss"] < 0.1 * h[0]["train_loss"]
    table = trainer.rmse_table()
    assert "meV/atom" in table and f"best epoch {trainer.best_epoch_}" in table
    assert "best_epoch" in repr(trainer)


def test_scaling_and_reference_energies_fitted_on_training_set(sfs, small_data):
    train, _ = small_data
    model = make_model(sfs)
    Trainer(model, max_epochs=0, progress=False).fit(train)
    assert model.is_scaling_fitted
    G = model.acsf.compute(train)
    stats = model.scaling_statistics()
    for el in ELEMENTS:
        np.testing.assert_allclose(stats[el]["Gmin"], G[el].min(0), rtol=1e-12)
        np.testing.assert_allclose(stats[el]["Gmean"], G[el].mean(0), rtol=1e-10)
    counts = np.array([[a.get_chemical_symbols().count(e) for e in ELEMENTS] for a in train])
    e0 = np.linalg.lstsq(counts, [a.get_potential_energy() for a in train], rcond=None)[0]
    np.testing.assert_allclose([model.reference_energies[e] for e in ELEMENTS], e0, rtol=1e-8)


def test_warm_start_keeps_normalisation(sfs, small_data):
    train, val = small_data
    model = make_model(sfs)
    Trainer(model, max_epochs=1, progress=False).fit(train)
    stats = model.scaling_statistics()
    e0 = model.reference_energies
    other = emt_frames(6, seed=11, rattle=0.2)
    Trainer(model, max_epochs=1, progress=False, fit_normalisation=False).fit(other)
    assert model.reference_energies == e0
    for el in ELEMENTS:
        np.testing.assert_array_equal(model.scaling_statistics()[el]["Gmax"], stats[el]["Gmax"])
    Trainer(model, max_epochs=0, progress=False).fit(other)            # default: refit
    assert model.reference_energies != e0


# ----------------------------------------------------------------------------- gradients


def test_force_loss_gradient_matches_finite_differences(sfs):
    frames = emt_frames(2, seed=5) + emt_frames(0, seed=6, clusters=1)
    model = make_model(sfs, hidden=(4,))
    model.fit_scaling(frames)
    items = [AtomsBatch.from_atoms([a], ELEMENTS, model.cutoff) for a in frames]
    e_ref = torch.tensor([a.get_potential_energy() for a in frames], dtype=torch.float64)
    f_ref = torch.tensor(np.concatenate([a.get_forces() for a in frames]))
    n_at = torch.tensor([len(a) for a in frames], dtype=torch.float64)

    def loss_value():
        batch = concatenate_batches(items)
        return energy_force_loss(model, batch, e_ref, f_ref, n_at, 1.0, 0.5)[0]

    loss = loss_value()
    model.zero_grad()
    loss.backward()
    checked = 0
    for name in ("networks.Cu.linears.0.weight", "networks.Ni.linears.0.weight",
                 "networks.Cu.linears.1.weight", "networks.Ni.linears.0.bias"):
        p = dict(model.named_parameters())[name]
        g = p.grad.reshape(-1)
        for k in (0, p.numel() // 2, p.numel() - 1):
            h = 1e-5
            orig = p.detach().clone()
            losses = []
            for step in (h, -h):
                with torch.no_grad():
                    p.copy_(orig)
                    p.view(-1)[k] += step
                losses.append(loss_value().item())     # forces need autograd: outside no_grad
            with torch.no_grad():
                p.copy_(orig)
            fd = (losses[0] - losses[1]) / (2 * h)
            assert g[k].item() == pytest.approx(fd, rel=1e-5, abs=1e-9), (name, k)
            checked += 1
    assert checked == 12
    # the force term matters: its gradient differs from the energy-only gradient
    model.zero_grad()
    energy_force_loss(model, concatenate_batches(items), e_ref, f_ref, n_at, 1.0, 0.0)[0].backward()
    g_e = model.networks["Cu"].linears[0].weight.grad.clone()
    model.zero_grad()
    loss_value().backward()
    assert not torch.allclose(g_e, model.networks["Cu"].linears[0].weight.grad)


def test_concatenated_batch_equals_directly_built_batch(sfs, small_data):
    train, _ = small_data
    model = make_model(sfs)
    model.fit_scaling(train)
    direct = AtomsBatch.from_atoms(train[:5], ELEMENTS, model.cutoff)
    joined = concatenate_batches([AtomsBatch.from_atoms([a], ELEMENTS, model.cutoff) for a in train[:5]])
    e1, f1 = model.energy_and_forces(direct)
    e2, f2 = model.energy_and_forces(joined)
    torch.testing.assert_close(e1, e2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f1, f2, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_weights(sfs, small_data):
    train, val = small_data
    kw = dict(lr=5e-3, batch_size=4, max_epochs=3, progress=False)
    a, b, c = make_model(sfs), make_model(sfs), make_model(sfs)
    ta = Trainer(a, seed=7, **kw).fit(train, val)
    tb = Trainer(b, seed=7, **kw).fit(train, val)
    assert_same_state(a, b)
    assert strip_time(ta.history_) == strip_time(tb.history_)
    Trainer(c, seed=8, **kw).fit(train, val)                 # other shuffling, other result
    assert not torch.equal(a.networks["Cu"].linears[0].weight, c.networks["Cu"].linears[0].weight)


class Crash(RuntimeError):
    pass


def crash_after(epoch):
    def callback(trainer, record):
        if epoch is None or record["epoch"] == epoch:
            raise Crash(f"simulated crash after epoch {epoch}")
    return callback


@pytest.mark.parametrize("schedule", ["plateau", "exponential"])
def test_resume_after_crash_reproduces_uninterrupted_run(sfs, small_data, tmp_path, schedule):
    train, val = small_data
    kw = dict(lr=5e-3, lr_schedule=schedule, lr_patience=1, batch_size=4, max_epochs=5,
              patience=10, seed=1, progress=False)
    ref_model = make_model(sfs)
    ref = Trainer(ref_model, checkpoint_dir=tmp_path / "ref", **kw).fit(train, val)

    model = make_model(sfs)
    seen = []
    with pytest.raises(Crash):
        Trainer(model, checkpoint_dir=tmp_path / "run", callbacks=[crash_after(3),
                lambda t, r: seen.append(r["epoch"])], **kw).fit(train, val)
    assert (tmp_path / "run" / CHECKPOINT_NAME).exists()
    assert torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=False)["epoch"] == 3

    fresh = make_model(sfs, seed=123)                       # weights come from the checkpoint
    resumed = Trainer(fresh, checkpoint_dir=tmp_path / "run",
                      callbacks=[lambda t, r: seen.append(r["epoch"])], **kw).fit(train, val, resume=True)
    assert seen == [1, 2, 4, 5]                             # the crash callback ran after epoch 3's
    assert_same_state(fresh, ref_model)
    assert strip_time(resumed.history_) == strip_time(ref.history_)
    assert resumed.best_epoch_ == ref.best_epoch_

    # a finished run is not repeated
    again = make_model(sfs, seed=5)
    t = Trainer(again, checkpoint_dir=tmp_path / "run", callbacks=[crash_after(None)], **kw)
    t.fit(train, val, resume=True)
    assert_same_state(again, ref_model)
    assert len(t.history_) == 5


def test_early_stopping_and_best_weights(sfs, small_data):
    train, val = small_data
    model = make_model(sfs)
    t = Trainer(model, lr=0.0, lr_schedule=None, batch_size=4, max_epochs=50, patience=3,
                progress=False).fit(train, val)
    assert t.stopped_early_ and t.best_epoch_ == 1 and len(t.history_) == 4

    # far too large a learning rate: later epochs get worse, the best epoch's weights come back
    model = make_model(sfs)
    t = Trainer(model, lr=0.5, lr_schedule=None, batch_size=4, max_epochs=4, patience=None,
                progress=False).fit(train, val)
    best = t.history_[t.best_epoch_ - 1]
    res = t.evaluate(val)
    assert res["energy_rmse_meV_atom"] == pytest.approx(best["val_energy_rmse_meV_atom"], rel=1e-8)
    assert best["val_loss"] == min(h["val_loss"] for h in t.history_)


def test_divergence_stops_and_restores_best_weights(sfs, small_data):
    train, val = small_data
    model = make_model(sfs)

    def poison(trainer, record):            # simulate a blow-up after epoch 2
        if record["epoch"] == 2:
            with torch.no_grad():
                trainer.model.networks["Cu"].linears[0].weight.fill_(float("nan"))

    with pytest.warns(RuntimeWarning, match="diverged"):
        t = Trainer(model, batch_size=4, max_epochs=10, progress=False, callbacks=[poison]).fit(train, val)
    assert t.stopped_early_ and len(t.history_) == 3 and t.best_epoch_ in (1, 2)
    assert torch.isfinite(model.networks["Cu"].linears[0].weight).all()


def test_callbacks_get_every_epoch(sfs, small_data):
    train, val = small_data

    class Recorder:
        def __init__(self):
            self.records = []

        def on_epoch_end(self, trainer, record):
            self.records.append(record)

    rec = Recorder()
    fn_calls = []
    t = Trainer(make_model(sfs), max_epochs=2, batch_size=6, progress=True,
                callbacks=[rec, lambda tr, r: fn_calls.append(r["epoch"])]).fit(train, val)
    assert [r["epoch"] for r in rec.records] == [1, 2] == fn_calls
    assert rec.records == t.history_
    for key in ("lr", "train_energy_rmse_meV_atom", "val_force_rmse_meV_A", "time_s"):
        assert math.isfinite(rec.records[-1][key])


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_groups_by_kind(sfs):
    frames = emt_frames(5, seed=9, clusters=3)
    model = make_model(sfs)
    t = Trainer(model, max_epochs=0, progress=False).fit(frames)
    res = t.evaluate(frames)
    n = np.array([len(a) for a in frames])
    assert res["n_structures"] == 8 and res["forces_pred"].shape == (n.sum(), 3)
    assert set(res["by_kind"]) == {"bulk", "cluster"}
    assert res["by_kind"]["bulk"]["n_structures"] == 5 and res["by_kind"]["cluster"]["n_structures"] == 3
    # independent recomputation from the per-structure/per-atom arrays
    de = res["energy_pred_per_atom"] - np.array([a.get_potential_energy() for a in frames]) / n
    assert res["energy_rmse_meV_atom"] == pytest.approx(1000 * np.sqrt(np.mean(de ** 2)))
    bulk_sel = res["kind"] == "bulk"
    assert res["by_kind"]["bulk"]["energy_rmse_meV_atom"] == pytest.approx(
        1000 * np.sqrt(np.mean(de[bulk_sel] ** 2)))
    f_ref = np.concatenate([a.get_forces() for a in frames])
    np.testing.assert_allclose(res["forces_ref"], f_ref)
    mse = (res["force_rmse_per_structure_meV_A"] ** 2 * 3 * n).sum() / (3 * n.sum())
    assert res["force_rmse_meV_A"] == pytest.approx(np.sqrt(mse))
    # predictions match the model's own energy_and_forces
    e, f = model.energy_and_forces(AtomsBatch.from_atoms(frames, ELEMENTS, model.cutoff))
    np.testing.assert_allclose(res["energy_pred"], e.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(res["forces_pred"], f.detach().numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- bad input


def test_bad_training_data_raises_specific_errors(sfs, small_data):
    train, _ = small_data
    trainer = Trainer(make_model(sfs), max_epochs=1, progress=False)

    no_energy = [a.copy() for a in train[:4]]
    for a, b in zip(no_energy, train[:4]):
        a.calc = SinglePointCalculator(a, forces=b.get_forces())
    no_energy[2].calc = None
    with pytest.raises(MissingLabelError, match="structure 0"):
        trainer.fit(no_energy)

    no_forces = list(train[:4])
    no_forces[1] = train[1].copy()
    no_forces[1].calc = SinglePointCalculator(no_forces[1], energy=1.0)
    with pytest.raises(MissingLabelError, match="structure 1.*forces"):
        trainer.fit(no_forces)
    Trainer(make_model(sfs), force_weight=0.0, max_epochs=1, progress=False).fit(no_forces)  # energy-only

    nan_forces = list(train[:4])
    nan_forces[3] = train[3].copy()
    f = train[3].get_forces().copy()
    f[5, 1] = np.nan
    nan_forces[3].calc = SinglePointCalculator(nan_forces[3], energy=0.0, forces=f)
    with pytest.raises(NonFiniteError, match=r"structure 3.*atoms \[5\]"):
        trainer.fit(nan_forces)

    nan_energy = list(train[:4])
    nan_energy[2] = train[2].copy()
    nan_energy[2].calc = SinglePointCalculator(nan_energy[2], energy=np.nan, forces=np.zeros((8, 3)))
    with pytest.raises(NonFiniteError, match="structure 2"):
        trainer.fit(nan_energy)

    alien = list(train[:4])
    alien[1] = train[1].copy()
    alien[1][6].symbol = "Al"
    alien[1].calc = SinglePointCalculator(alien[1], energy=0.0, forces=np.zeros((8, 3)))
    with pytest.raises(UnknownElementError, match="structure 1, atom 6 is 'Al'"):
        trainer.fit(alien)

    close = list(train[:4])
    close[3] = train[3].copy()
    close[3].positions[4] = close[3].positions[2] + [0.1, 0.0, 0.0]
    close[3].calc = SinglePointCalculator(close[3], energy=0.0, forces=np.zeros((8, 3)))
    with pytest.raises(AtomsTooCloseError, match="training set: structure 3: atoms 2"):
        trainer.fit(close)

    with pytest.raises(MissingLabelError, match="validation set: structure 0"):
        trainer.fit(train[:4], no_energy[2:])

    with pytest.raises(ValueError, match="lr_schedule"):
        Trainer(make_model(sfs), lr_schedule="cosine")


def test_resume_extends_a_finished_run(sfs, small_data, tmp_path):
    train, val = small_data
    kw = dict(lr=5e-3, lr_schedule="exponential", batch_size=4, patience=None, seed=2, progress=False)
    ref_model = make_model(sfs)
    ref = Trainer(ref_model, max_epochs=5, **kw).fit(train, val)
    model = make_model(sfs)
    Trainer(model, max_epochs=3, checkpoint_dir=tmp_path, **kw).fit(train, val)
    longer = Trainer(make_model(sfs, seed=4), max_epochs=5, checkpoint_dir=tmp_path, **kw)
    longer.fit(train, val, resume=True)
    assert strip_time(longer.history_) == strip_time(ref.history_)
    assert_same_state(longer.model, ref_model)


def test_live_loss_plot_callback_draws_curves(sfs, small_data, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import IPython.display


    shown = []

    class Handle:
        def update(self, fig):
            shown.append(fig)

    def fake_display(fig, display_id=False):
        shown.append(fig)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    train, val = small_data
    Trainer(make_model(sfs), max_epochs=3, batch_size=6, progress=False,
            callbacks=[LiveLossPlot()]).fit(train, val)
    assert len(shown) == 3
    ax_e, ax_f = shown[-1].axes
    assert [len(line.get_xdata()) for line in ax_e.lines] == [3, 3]   # train and val curves
    assert "meV/Å" in ax_f.get_ylabel()
