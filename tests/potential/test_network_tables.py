"""The atomic networks in numpy (:mod:`mdmlkit.descriptors.kernels.networks`), used by the
fused MD kernels, and per atom inside numba (``atom_network``): energies and dE/dG against
the model's own torch networks and autograd, for every activation and scaling mode, both
dtypes, and weights changed in place."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from mdmlkit.descriptors import generate_set
from mdmlkit.descriptors.kernels.networks import ACTIVATIONS, NetworkTables, atom_network
from mdmlkit.errors import InputError
from mdmlkit.potential import HDNNP
from mdmlkit.potential.activations import ACTIVATIONS as TORCH_ACTIVATIONS


def _model(activation="tanh", scaling="center_scale", dtype=torch.float64, output="linear"):
    sfs = generate_set(["Cu", "Ni"], rc=4.0, n_radial=3, n_angular=1)
    m = HDNNP(sfs, hidden=(7, 5), activation=activation, scaling_mode=scaling,
              output_activation=output, dtype=dtype, seed=3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():                      # statistics and references away from defaults
        for el in m.elements:
            s = m.scalers[el]
            lo = torch.rand(s.n_features, generator=g, dtype=torch.float64) * 0.3
            s.G_min.copy_(lo)
            s.G_max.copy_(lo + 0.5 + torch.rand(s.n_features, generator=g, dtype=torch.float64))
            s.G_mean.copy_(lo + 0.2)
            s.G_sigma.copy_(0.1 + torch.rand(s.n_features, generator=g, dtype=torch.float64))
        m.atom_energy.copy_(torch.tensor([-3.5, -4.25], dtype=torch.float64))
        m.energy_scale_buf.fill_(1.7)
    return m


def _reference(m, G, species):
    """Energies and dE/dG from the model's torch modules by autograd."""
    tG = torch.from_numpy(G).to(m.dtype).requires_grad_(True)
    idx = {el: torch.nonzero(torch.from_numpy(species) == k).flatten() for k, el in enumerate(m.elements)}
    Gs = {el: tG.index_select(0, idx[el])[:, :m.scalers[el].n_features] for el in m.elements}
    e = m.atomic_energies_from(Gs, idx, torch.from_numpy(species))
    (g,) = torch.autograd.grad(e.sum(), tG)
    return e.detach().numpy(), g.numpy()


def _inputs(m, n=23, seed=0):
    rng = np.random.default_rng(seed)
    species = rng.integers(0, 2, n)
    species[:2] = (0, 1)
    F = max(m.scalers[el].n_features for el in m.elements)
    return rng.random((n, F)) * 1.5, species


def test_every_activation_is_available():
    assert set(ACTIVATIONS) == set(TORCH_ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activations_match_torch(activation):
    m = _model(activation=activation, output=activation if activation != "relu" else "linear")
    G, species = _inputs(m)
    e_ref, g_ref = _reference(m, G, species)
    e, g = NetworkTables(m).evaluate(m, G, [np.nonzero(species == k)[0] for k in range(2)])
    np.testing.assert_allclose(e, e_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-11)
    assert np.abs(g).max() > 1e-3


@pytest.mark.parametrize("scaling", ["none", "center", "scale", "center_scale", "scale_sigma"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_scaling_modes_and_dtypes(scaling, dtype):
    m = _model(scaling=scaling, dtype=dtype)
    G, species = _inputs(m, seed=1)
    e_ref, g_ref = _reference(m, G, species)
    tables = NetworkTables(m, np.float32 if dtype == torch.float32 else np.float64)
    e, g = tables.evaluate(m, G.astype(tables.dtype), [np.nonzero(species == k)[0] for k in range(2)])
    assert e.dtype == tables.dtype and g.dtype == tables.dtype
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    np.testing.assert_allclose(e, e_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(g, g_ref, rtol=10 * tol, atol=10 * tol * np.abs(g_ref).max())
    # columns past an element's own functions get dE/dG = 0
    for k, el in enumerate(m.elements):
        assert not g[species == k, m.scalers[el].n_features:].any()


def test_weights_changed_in_place_are_seen():
    """A model retrained in place (optimiser steps, load_state_dict) is never evaluated with
    the old weights."""
    m = _model()
    G, species = _inputs(m, seed=2)
    rows = [np.nonzero(species == k)[0] for k in range(2)]
    tables = NetworkTables(m)
    e0, _ = tables.evaluate(m, G, rows)
    with torch.no_grad():
        m.networks["Ni"].linears[1].weight.mul_(1.5)
        m.scalers["Cu"].G_mean.add_(0.05)
        m.atom_energy[0] += 0.25
    e1, g1 = tables.evaluate(m, G, rows)
    e_ref, g_ref = _reference(m, G, species)
    np.testing.assert_allclose(e1, e_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g1, g_ref, rtol=1e-9, atol=1e-11)
    assert np.abs(e1 - e0).min() > 1e-6
    m.load_state_dict(_model().state_dict())
    np.testing.assert_allclose(tables.evaluate(m, G, rows)[0], e0, rtol=1e-12)
    assert "NetworkTables(" in repr(tables)


def test_unknown_activation_is_refused():
    m = _model()
    m.networks["Cu"].acts[0].name = "swish"
    with pytest.raises(InputError, match="swish"):
        NetworkTables(m)


@functools.cache
def _per_atom_kernel():
    numba = pytest.importorskip("numba")

    @numba.njit
    def per_atom(species, G, n_layers, layers, weights, scale, e_ref, width):
        H = np.zeros((layers.shape[1] + 1, width), G.dtype)
        D = np.zeros((layers.shape[1] + 1, width), G.dtype)
        e = np.empty(G.shape[0], G.dtype)
        gG = np.full(G.shape, np.nan, G.dtype)
        for i in range(G.shape[0]):
            e[i] = atom_network(species[i], G[i], n_layers, layers, weights, scale, e_ref, H, D, gG[i])
        return e, gG
    return per_atom


def _per_atom(*args):
    """Energies and dE/dG of every row through :func:`atom_network`, one atom at a time."""
    return _per_atom_kernel()(*args)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_atom_network_matches_torch(activation):
    """The per-atom network of the single-pass triplet kernel: the model's energies and
    autograd dE/dG for every activation (relative: the exp net reaches 1e100)."""
    m = _model(activation=activation, output=activation if activation != "relu" else "linear")
    G, species = _inputs(m, seed=4)
    e_ref, g_ref = _reference(m, G, species)
    e, g = _per_atom(species, G, *NetworkTables(m).packed(m))
    np.testing.assert_allclose(e, e_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-11 * max(1.0, np.abs(g_ref).max()))
    for k, el in enumerate(m.elements):       # dE/dG zero past the element's own functions
        assert not g[species == k, m.scalers[el].n_features:].any()


def test_atom_network_float32_and_refresh():
    """float32 tables, and packed arrays rebuilt after weights change in place."""
    m = _model(dtype=torch.float32)
    G, species = _inputs(m, seed=5)
    tables = NetworkTables(m, np.float32)
    flat = tables.packed(m)
    assert flat[2].dtype == np.float32 and tables.packed(m) is flat     # cached while unchanged
    with torch.no_grad():
        m.networks["Cu"].linears[0].weight.mul_(0.7)
    e_ref, g_ref = _reference(m, G, species)
    e, g = _per_atom(species, G.astype(np.float32), *tables.packed(m))
    assert e.dtype == np.float32
    np.testing.assert_allclose(e, e_ref, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=2e-4 * np.abs(g_ref).max())
