"""HDNNP model: n2p2 reproduction, autograd forces/stress vs finite differences,
invariances, scaling/activation definitions, fitting, float32, save/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mdmlkit.descriptors import AtomsBatch, SymmetryFunctionSet
from mdmlkit.errors import ModelMismatchError
from mdmlkit.io.n2p2 import read_input_data, read_scaling_data
from mdmlkit.potential import HDNNP, load_n2p2_model
from mdmlkit.potential.activations import Activation
from mdmlkit.potential.scaling import SymmetryFunctionScaling

SFS_TEXT = """
elements La Zr O
cutoff_type 6 0.0
""" + "\n".join(
    f"symfunction_short {c} 2 {n} {eta} {rs} 4.5"
    for c in ("La", "Zr", "O") for n in ("La", "Zr", "O") for eta, rs in ((0.5, 0.0), (1.0, 2.2))
) + "\n" + "\n".join(
    f"symfunction_short {c} 9 {a} {b} 0.05 {lam} 1.0 4.5"
    for c in ("La", "Zr", "O") for a, b in (("O", "O"), ("Zr", "O"), ("La", "Zr")) for lam in (-1, 1)
) + "\n"


def random_structure(n: int, seed: int, periodic: bool, box: float = 6.0) -> Atoms:
    """Random La/Zr/O structure with all distances >= 1.6 Å (periodic images included)."""
    rng = np.random.default_rng(seed)
    symbols = rng.choice(["La", "Zr", "O", "O"], size=n)
    pos = []
    cell = np.diag([box, box * 1.05, box * 0.95]) + rng.uniform(-0.4, 0.4, (3, 3)) * periodic
    while len(pos) < n:
        p = rng.uniform(0, 1, 3) @ cell
        ok = True
        for q in pos:
            d = p - q
            if periodic:
                frac = np.linalg.solve(cell.T, d)
                d = (frac - np.round(frac)) @ cell
            if np.linalg.norm(d) < 1.6:
                ok = False
                break
        if ok:
            pos.append(p)
    return Atoms(list(symbols), positions=pos, cell=cell if periodic else None, pbc=periodic)


@pytest.fixture(scope="module")
def sfs():
    return SymmetryFunctionSet.from_text(SFS_TEXT)


@pytest.fixture(scope="module")
def frames():
    return [random_structure(14, 1, True), random_structure(9, 2, False), random_structure(12, 3, True)]


@pytest.fixture(scope="module")
def model(sfs, frames):
    m = HDNNP(sfs, hidden=(10, 8), activation="tanh", seed=7)
    m.fit_scaling(frames)
    m.set_reference_energies({"La": -3.0, "Zr": -4.0, "O": -1.5})
    return m


def batch_of(model, frames):
    return AtomsBatch.from_atoms(frames, model.elements, model.cutoff, device="cpu", dtype=model.dtype)


def energy(model, atoms) -> float:
    with torch.no_grad():
        return float(model(batch_of(model, [atoms]))[0])


# ----------------------------------------------------------------------------- n2p2 reference


def test_reproduces_n2p2_energies_and_forces(n2p2_ref):
    model = load_n2p2_model(n2p2_ref)
    frames = read_input_data(n2p2_ref / "input.data")
    out = read_input_data(n2p2_ref / "output.data")
    e, f = model.energy_and_forces(batch_of(model, frames))
    np.testing.assert_allclose(e.detach().numpy(), [a.get_potential_energy() for a in out], rtol=1e-10)
    np.testing.assert_allclose(f.numpy(), np.concatenate([a.get_forces() for a in out]), atol=1e-9)


def test_fit_scaling_matches_n2p2_scaling_data(n2p2_ref):
    ref = load_n2p2_model(n2p2_ref)
    frames = read_input_data(n2p2_ref / "input.data")
    model = HDNNP(ref.sfs, hidden=(4,))
    assert not model.is_scaling_fitted
    model.fit_scaling(frames, batch_size=2)        # two chunks: tests the streaming merge
    assert model.is_scaling_fitted
    want = read_scaling_data(n2p2_ref / "scaling.data", ref.elements)
    got = model.scaling_statistics()
    for el in ref.elements:
        for key in ("Gmin", "Gmax", "Gmean", "Gsigma"):
            np.testing.assert_allclose(got[el][key], want[el][key], rtol=1e-10, atol=1e-13,
                                       err_msg=f"{el} {key}")


# ----------------------------------------------------------------------------- definitions


@pytest.mark.parametrize("mode", ["none", "scale", "center", "center_scale", "scale_sigma"])
def test_scaling_modes_follow_n2p2_formulas(mode):
    rng = np.random.default_rng(0)
    G = rng.uniform(0, 3, (5, 4))
    gmin, gmax, gmean, gsig = G.min(0), G.max(0), G.mean(0), G.std(0, ddof=1)
    smin, smax = -0.5, 2.0
    want = {"none": G, "center": G - gmean,
            "scale": smin + (smax - smin) * (G - gmin) / (gmax - gmin),
            "center_scale": smin + (smax - smin) * (G - gmean) / (gmax - gmin),
            "scale_sigma": smin + (smax - smin) * (G - gmean) / gsig}[mode]
    sc = SymmetryFunctionScaling(4, mode, smin, smax).double()
    for buf, v in ((sc.G_min, gmin), (sc.G_max, gmax), (sc.G_mean, gmean), (sc.G_sigma, gsig)):
        buf.copy_(torch.as_tensor(v))
    np.testing.assert_allclose(sc(torch.as_tensor(G)).numpy(), want, rtol=1e-14, atol=1e-14)


def test_constant_function_scaled_to_constant():
    sc = SymmetryFunctionScaling(1, "center_scale").double()
    sc.G_min.fill_(2.0), sc.G_max.fill_(2.0), sc.G_mean.fill_(2.0)
    out = sc(torch.tensor([[2.0], [3.0]], dtype=torch.float64))
    assert torch.all(torch.isfinite(out)) and torch.all(out == 0.0)


@pytest.mark.parametrize("letter, fn", [
    ("l", lambda x: x), ("t", np.tanh), ("s", lambda x: 1 / (1 + np.exp(-x))),
    ("p", lambda x: np.log1p(np.exp(x))), ("r", lambda x: np.maximum(x, 0)),
    ("g", lambda x: np.exp(-0.5 * x * x)), ("c", np.cos), ("S", lambda x: 1 - 1 / (1 + np.exp(-x))),
    ("e", lambda x: np.exp(-x)), ("h", lambda x: x * x),
])
def test_activations_follow_n2p2(letter, fn):
    x = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(Activation(letter)(torch.as_tensor(x)).numpy(), fn(x), rtol=1e-14, atol=1e-15)


def test_bad_arguments(sfs):
    with pytest.raises(ValueError, match="scaling_mode"):
        HDNNP(sfs, scaling_mode="minmax")
    with pytest.raises(ValueError, match="activation"):
        HDNNP(sfs, activation="swishy")
    with pytest.raises(ValueError, match="activations"):
        HDNNP(sfs, hidden=(4, 4), activation=["tanh"] * 3)


# ----------------------------------------------------------------------------- physics


def test_forces_match_finite_differences(model, frames):
    h = 1e-5
    for atoms in frames[:2]:
        _, f = model.energy_and_forces(batch_of(model, [atoms]))
        rng = np.random.default_rng(5)
        for i in rng.choice(len(atoms), 3, replace=False):
            for a in range(3):
                plus, minus = atoms.copy(), atoms.copy()
                plus.positions[i, a] += h
                minus.positions[i, a] -= h
                fd = -(energy(model, plus) - energy(model, minus)) / (2 * h)
                assert f[i, a].item() == pytest.approx(fd, abs=1e-6, rel=1e-6)


def test_stress_matches_strain_derivative(model, frames):
    atoms = frames[0]
    e, f, stress = model.energy_forces_stress(batch_of(model, [atoms]))
    e_plain, f_plain = model.energy_and_forces(batch_of(model, [atoms]))
    assert e.item() == pytest.approx(e_plain.item(), rel=1e-14)
    np.testing.assert_allclose(f.numpy(), f_plain.numpy(), atol=1e-13)
    h, vol = 1e-5, atoms.get_volume()
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h
        vals = []
        for sign in (1, -1):
            s = atoms.copy()
            s.set_cell(atoms.cell[:] @ (np.eye(3) + sign * (eps if a == b else eps / 2)), scale_atoms=True)
            vals.append(energy(model, s))
        fd = (vals[0] - vals[1]) / (2 * h) / vol
        assert stress[0, a, b].item() == pytest.approx(fd, abs=1e-7, rel=1e-6), (a, b)


def test_stress_is_nan_for_clusters(model, frames):
    _, _, stress = model.energy_forces_stress(batch_of(model, [frames[1]]))
    assert torch.isnan(stress).all()


def test_invariances(model, frames):
    atoms = frames[0]
    rot = atoms.copy()
    rot.rotate(37, (1, 2, 0.5), rotate_cell=True)
    trans = atoms.copy()
    trans.translate([0.3, -1.1, 2.0])
    perm = atoms[np.random.default_rng(0).permutation(len(atoms))]
    wrapped = atoms.copy()
    wrapped.positions += 3.7 * atoms.cell[0]           # whole-cell translation of every atom
    e, f = model.energy_and_forces(batch_of(model, [atoms, rot, trans, perm, wrapped]))
    e = e.detach().numpy()
    np.testing.assert_allclose(e[1:], e[0], rtol=1e-12)
    n = len(atoms)
    np.testing.assert_allclose(f[n:2 * n].numpy(), f[:n].numpy() @ np.linalg.inv(atoms.cell[:]) @ rot.cell[:],
                               atol=1e-10)
    # forces of a periodic structure sum to zero (translation invariance)
    np.testing.assert_allclose(f[:n].sum(0).numpy(), 0.0, atol=1e-11)


def test_batch_equals_single_and_atomic_energies(model, frames):
    b = batch_of(model, frames)
    e_batch, f_batch = model.energy_and_forces(b)
    f_single = []
    for k, atoms in enumerate(frames):
        e_k, f_k = model.energy_and_forces(batch_of(model, [atoms]))
        assert e_batch[k].item() == pytest.approx(e_k.item(), rel=1e-13)
        f_single.append(f_k)
    np.testing.assert_allclose(f_batch.numpy(), torch.cat(f_single).numpy(), atol=1e-12)
    with torch.no_grad():
        ea = model.atomic_energies(b)
        per = torch.zeros(len(frames), dtype=ea.dtype).index_add(0, b.structure, ea)
    np.testing.assert_allclose(per.numpy(), e_batch.detach().numpy(), rtol=1e-13)
    # reference energies enter every atom: shifting E0(O) by 1 eV shifts E by the O count
    m2 = type(model)(model.sfs, hidden=(10, 8), seed=7)
    m2.load_state_dict(model.state_dict())
    m2.set_reference_energies({"O": model.reference_energies["O"] + 1.0})
    with torch.no_grad():
        de = (m2(b) - model(b)).numpy()
    np.testing.assert_allclose(de, [a.get_chemical_symbols().count("O") for a in frames], rtol=1e-12)


def test_float32(model, frames):
    m32 = HDNNP(model.sfs, hidden=(10, 8), seed=7, dtype=torch.float32)
    m32.load_state_dict(model.state_dict())
    assert m32.dtype == torch.float32
    e64, f64 = model.energy_and_forces(batch_of(model, frames))
    e32, f32 = m32.energy_and_forces(batch_of(m32, frames))
    assert e32.dtype == torch.float32 and f32.dtype == torch.float32
    np.testing.assert_allclose(e32.detach().numpy(), e64.detach().numpy(), rtol=2e-6)
    np.testing.assert_allclose(f32.numpy(), f64.numpy(), atol=2e-4 * float(f64.abs().max()))
    with pytest.raises(ModelMismatchError, match="dtype"):
        m32(batch_of(model, frames))


def test_force_loss_backpropagates(model, frames):
    """create_graph=True lets a force loss train the weights (needed by the trainer)."""
    m = HDNNP(model.sfs, hidden=(6,), seed=1).fit_scaling(frames)
    e, f = m.energy_and_forces(batch_of(m, frames), create_graph=True)
    ((e / 10) ** 2).mean().backward(retain_graph=True)
    e_grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    (f ** 2).mean().backward()
    # the force loss reaches every weight matrix (the output bias does not enter forces)
    for lin in (ll for net in m.networks.values() for ll in net.linears):
        assert lin.weight.grad is not None and float(lin.weight.grad.abs().sum()) > 0
    assert all(torch.isfinite(g).all() for g in e_grads)


# ----------------------------------------------------------------------------- fitting, I/O


def test_fit_scaling_from_descriptors_equals_from_frames(model, frames):
    with torch.no_grad():
        G = model.descriptors(batch_of(model, frames))
    m = HDNNP(model.sfs, hidden=(3,))
    m.fit_scaling({el: g.numpy() for el, g in G.items()})
    for el in model.elements:
        for k, v in m.scaling_statistics()[el].items():
            np.testing.assert_allclose(v, model.scaling_statistics()[el][k], rtol=1e-12, atol=1e-14)
    with pytest.raises(ModelMismatchError):
        m.fit_scaling({"O": np.zeros((3, 2))})


def test_fit_reference_energies(model, frames):
    mu = {"La": -4.5, "Zr": -6.25, "O": -2.125}
    extra = [Atoms("LaO", positions=[[0, 0, 0], [2, 0, 0]]), Atoms("ZrO2", positions=[[0, 0, 0], [2, 0, 0], [0, 2, 0]])]
    data = list(frames) + extra
    energies = [sum(mu[s] for s in a.get_chemical_symbols()) for a in data]
    m = HDNNP(model.sfs, hidden=(3,))
    m.fit_reference_energies(data, energies)
    assert m.reference_energies == pytest.approx(mu, rel=1e-12)
    # energies taken from attached calculators; one stoichiometry only -> minimum-norm
    # solution, which still reproduces the total energies
    same = []
    for k in range(3):
        a = Atoms("La2Zr2O7", positions=np.arange(33).reshape(11, 3) * 2.0)
        a.calc = SinglePointCalculator(a, energy=-60.0 + k)
        same.append(a)
    m.fit_reference_energies(same)
    e0 = m.reference_energies
    assert 2 * e0["La"] + 2 * e0["Zr"] + 7 * e0["O"] == pytest.approx(-59.0, rel=1e-12)


def test_save_load_round_trip(tmp_path, model, frames):
    path = model.save(tmp_path / "model.pt")
    back = HDNNP.load(path)
    assert back.elements == model.elements and back.sfs == model.sfs
    assert back.reference_energies == model.reference_energies
    assert back.config() == model.config()
    b = batch_of(model, frames)
    with torch.no_grad():
        np.testing.assert_array_equal(back(b).numpy(), model(b).numpy())
    back32 = HDNNP.load(path, dtype=torch.float32)
    assert back32.dtype == torch.float32
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelMismatchError, match="not an mdmlkit HDNNP"):
        HDNNP.load(tmp_path / "other.pt")


def test_repr_and_parameters(model):
    r = repr(model)
    for piece in ("La", "Zr", "O", "12-10-8-1", "tanh tanh linear", "center_scale", "fitted", "float64"):
        assert piece in r, piece
    n = sum(p.numel() for p in model.parameters())
    assert f"parameters={n}" in r
    assert n == 3 * (12 * 10 + 10 + 10 * 8 + 8 + 8 + 1)


def test_seed_and_reset(sfs):
    a, b = HDNNP(sfs, hidden=(5,), seed=3), HDNNP(sfs, hidden=(5,), seed=3)
    state = torch.random.get_rng_state()
    c = HDNNP(sfs, hidden=(5,), seed=4)
    assert torch.equal(state, torch.random.get_rng_state()), "seeded construction touched the global RNG"
    for el in sfs.elements:
        np.testing.assert_array_equal(a.n2p2_connections(el), b.n2p2_connections(el))
        assert not np.array_equal(a.n2p2_connections(el), c.n2p2_connections(el))
    before = a.n2p2_connections("O")
    a.reset_parameters()
    assert not np.array_equal(before, a.n2p2_connections("O"))


def long_radial_functions(rc: float = 6.5):
    """Radial functions reaching beyond the 4.5 Å of SFS_TEXT (a second tier of tables):
    per element pair, eta 0 and a Gaussian at 5 Å."""
    from mdmlkit.descriptors import long_radial_functions as generate

    return generate(["La", "Zr", "O"], rc)


def test_with_functions_keeps_predictions(model, frames):
    """Adding functions (here longer-range radial ones) gives a model that predicts exactly
    what the original does, with the old functions' statistics and the new ones fitted."""
    extra = long_radial_functions()
    grown = model.with_functions(extra, frames)
    assert grown.cutoff == 6.5 and grown.acsf.short_cutoff == 4.5
    for el in model.elements:
        assert grown.n_features[el] == model.n_features[el] + 6
        cols = [grown.sfs.functions[el].index(f) for f in model.sfs.functions[el]]
        new = [grown.sfs.functions[el].index(f) for f in extra if f.central == el]
        st, st0 = grown.scaling_statistics()[el], model.scaling_statistics()[el]
        assert np.array_equal(st["Gmean"][cols], st0["Gmean"])
        assert np.all(st["Gmax"][new] > st["Gmin"][new])
        w = grown.networks[el].linears[0].weight.detach()
        assert torch.all(w[:, new] == 0) and torch.equal(w[:, cols], model.networks[el].linears[0].weight)
    batch = AtomsBatch.from_atoms(frames, model.elements, model.cutoff)
    batch_g = AtomsBatch.from_atoms(frames, model.elements, grown.cutoff)
    e0, f0 = model.energy_and_forces(batch)
    e1, f1 = grown.energy_and_forces(batch_g)
    assert torch.allclose(e0, e1, rtol=0, atol=1e-12) and torch.allclose(f0, f1, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="already has"):
        grown.with_functions(extra[:1], frames)
    with pytest.raises(ValueError, match="no functions"):
        model.with_functions([], frames)


def test_widened_keeps_predictions_and_trains_new_units(model, frames):
    """Wider hidden layers (Net2Net "wider"): the same energies and forces at first, the old
    weights in place, and the new units move after one optimiser step."""
    wide = model.widened({el: [n + 5 for n in model.layer_sizes(el)[1:-1]] for el in model.elements})
    for el in model.elements:
        assert wide.layer_sizes(el) == [model.layer_sizes(el)[0],
                                        *[n + 5 for n in model.layer_sizes(el)[1:-1]], 1]
        old, new = model.networks[el].linears, wide.networks[el].linears
        for a, b in zip(old, new):
            n_out, n_in = a.weight.shape
            assert torch.equal(b.weight[:n_out, :n_in], a.weight)
            assert torch.all(b.weight[:, n_in:] == 0)
        assert torch.all(new[0].weight[model.layer_sizes(el)[1]:] != 0)
    batch = AtomsBatch.from_atoms(frames, model.elements, model.cutoff)
    e0, f0 = model.energy_and_forces(batch)
    e1, f1 = wide.energy_and_forces(batch)
    assert torch.allclose(e0, e1, rtol=0, atol=1e-12) and torch.allclose(f0, f1, rtol=0, atol=1e-12)
    assert wide.n_parameters() > model.n_parameters()
    # one gradient step on the energies moves the zero outgoing weights of the new units
    opt = torch.optim.SGD(wide.parameters(), lr=1e-2)
    loss = ((wide(batch) - e0.detach() - 1.0) ** 2).sum()
    loss.backward()
    opt.step()
    out = wide.networks["O"].linears[-1].weight
    assert torch.any(out[:, model.layer_sizes("O")[-2]:] != 0)
    with pytest.raises(ValueError, match="cannot widen"):
        model.widened({el: [1] * (len(model.layer_sizes(el)) - 2) for el in model.elements})
    with pytest.raises(ValueError, match="cannot widen"):
        model.widened([64])


def test_without_functions_inverts_with_functions(model, frames):
    """Removing zero-weight functions gives back the original model's predictions exactly."""
    extra = long_radial_functions()
    pruned = model.with_functions(extra, frames).without_functions(extra, frames)
    assert list(pruned.sfs) == list(model.sfs)
    assert pruned.removal_r2_ == {el: 1.0 for el in model.elements}
    batch = AtomsBatch.from_atoms(frames, model.elements, model.cutoff)
    e0, f0 = model.energy_and_forces(batch)
    e1, f1 = pruned.energy_and_forces(batch)
    assert torch.allclose(e0, e1, rtol=0, atol=1e-12) and torch.allclose(f0, f1, rtol=0, atol=1e-12)


def test_without_functions_folds_least_squares(model, frames):
    """The removed inputs' first-layer contribution is replaced by its least-squares fit on
    the kept scaled inputs (checked against numpy's lstsq on the same descriptors), which
    approximates the original pre-activations better than dropping the columns, and
    ``removal_r2_`` is the R² of that fit."""
    drop = [f for f in model.sfs if f.is_angular and f.lambda_ > 0]
    pruned = model.without_functions(drop, frames)
    batch = AtomsBatch.from_atoms(frames, model.elements, model.cutoff)
    with torch.no_grad():
        G = model.descriptors(batch)
    for el in model.elements:
        fs = list(model.sfs.functions[el])
        d = [i for i, f in enumerate(fs) if f in drop]
        k = [i for i in range(len(fs)) if i not in d]
        with torch.no_grad():
            S = model.scalers[el](G[el]).numpy()
            W = model.networks[el].linears[0].weight.numpy()
            b = model.networks[el].linears[0].bias.numpy()
            Wp = pruned.networks[el].linears[0].weight.numpy()
            bp = pruned.networks[el].linears[0].bias.numpy()
        X = np.hstack([S[:, k], np.ones((len(S), 1))])
        B = np.linalg.lstsq(X, S[:, d], rcond=None)[0]
        target = S @ W.T
        # fitted pre-activations (weights may differ along directions the data do not span)
        np.testing.assert_allclose(S[:, k] @ Wp.T + bp, S[:, k] @ W[:, k].T + b + X @ B @ W[:, d].T,
                                   rtol=0, atol=1e-7)
        err_fold = np.sum((S[:, k] @ Wp.T + bp - b - target) ** 2)
        err_drop = np.sum((S[:, k] @ W[:, k].T - target) ** 2)
        assert err_fold < err_drop
        y = S[:, d] @ W[:, d].T
        r2 = 1 - np.sum((y - X @ B @ W[:, d].T) ** 2) / np.sum((y - y.mean(0)) ** 2)
        assert pruned.removal_r2_[el] == pytest.approx(r2, abs=1e-6)
    with pytest.raises(ValueError, match="does not have"):
        pruned.without_functions(drop[:1], frames)
    with pytest.raises(ValueError, match="no functions of"):
        model.without_functions([f for f in model.sfs if f.central == "O"], frames)
    with pytest.raises(ValueError, match="no functions to remove"):
        model.without_functions([], frames)
