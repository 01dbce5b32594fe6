"""The atomic networks of an HDNNP in numpy: energies and dE/dG without a torch graph.

For MD of small cells the per-call cost of running the element networks through
torch (index selects per element, an autograd graph, its backward) is a large part
of a step.  :class:`NetworkTables` packs a model's networks into per-element numpy
matrices (the model's dtype; the symmetry-function scaling folded into the first
layer: ``G' = s * G + o`` is affine in every n2p2 scaling mode, so ``W1 G' + b1 =
(W1 s) G + (W1 o + b1)``) and :meth:`NetworkTables.evaluate` runs them forward and
in reverse mode, one matrix product per layer and element:

    E_i = scale * NN_e(G_i) + E_ref(e),    dE_i/dG_i = scale * dNN_e/dG_i

for every atom i of element e.  All n2p2 activations are supported with
:class:`mdmlkit.potential.activations.Activation`'s definitions
(:data:`ACTIVATIONS`).  :meth:`NetworkTables.packed` gives the same matrices as flat
arrays for :func:`atom_network`, which runs one atom's network (forward and reverse)
inside a numba kernel: the single-pass triplet kernel of :mod:`.fused` evaluates each
atom's network between its symmetry functions and its gradients.  The matrices are
rebuilt only when a parameter or buffer of the model changes (torch's in-place version counters), so a model retrained in
place is never evaluated with stale weights.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from mdmlkit.errors import InputError

__all__ = ["ACTIVATIONS", "ACTIVATION_CODES", "NetworkTables", "atom_network"]

try:                                     # numba comes with umap-learn, a core dependency
    from numba import njit
except ImportError:                      # pragma: no cover - exercised only without numba
    njit = None


def _logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softplus(z):
    y = np.logaddexp(0.0, z)
    return np.where(z > 35.0, z, y), np.where(z > 35.0, 1.0, _logistic(z))


def _tanh(z):
    t = np.tanh(z)
    return t, 1.0 - t * t


def _sigm(z):
    s = _logistic(z)
    return s, s * (1.0 - s)


def _gauss(z):
    g = np.exp(-0.5 * z * z)
    return g, -z * g


def _revlog(z):
    s = _logistic(z)
    return 1.0 - s, -s * (1.0 - s)


def _exp(z):
    e = np.exp(-z)
    return e, -e


#: Activation name -> z -> (f(z), f'(z)); n2p2 definitions, as ``Activation`` (softplus is
#: the identity above z = 35; relu'(0) = 0 as in torch).  ``linear`` has f' = None (1).
ACTIVATIONS = {"linear": lambda z: (z, None), "tanh": _tanh, "logistic": _sigm, "softplus": _softplus,
               "relu": lambda z: (np.maximum(z, 0.0), (z > 0.0).astype(z.dtype)),
               "gaussian": _gauss, "cos": lambda z: (np.cos(z), -np.sin(z)), "revlogistic": _revlog,
               "exp": _exp, "harmonic": lambda z: (z * z, 2.0 * z)}


#: Activation name -> integer code of :func:`atom_network` (the order of :data:`ACTIVATIONS`).
ACTIVATION_CODES = {name: k for k, name in enumerate(ACTIVATIONS)}


def _parameter_versions(model) -> tuple:
    """Identity and in-place version of every tensor the tables are made from (direct
    attribute reads: iterating ``model.parameters()`` would cost more than a small MD step)."""
    key = [float(model.energy_scale_buf), id(model.atom_energy), model.atom_energy._version]
    for el in model.elements:
        s, net = model.scalers[el], model.networks[el]
        key += [s.mode, s.scale_min, s.scale_max, *net.activation_names]
        for t in (s.G_min, s.G_max, s.G_mean, s.G_sigma,
                  *(p for lin in net.linears for p in (lin.weight, lin.bias))):
            key += [id(t), t._version]
    return tuple(key)


class NetworkTables:
    """A model's element networks as numpy matrices.

    ``evaluate(model, G, rows)`` gives atomic energies and dE/dG; the matrices are
    rebuilt when a parameter or buffer of ``model`` was changed since the last call.
    """

    def __init__(self, model, dtype=np.float64) -> None:
        self.dtype = np.dtype(dtype)
        self._key = None
        self._layers = None
        self._flat = None
        self._refresh(model)

    def __repr__(self) -> str:
        sizes = {el: "-".join([str(ls[0][0].shape[0])] + [str(w.shape[1]) for w, *_ in ls])
                 for el, ls in zip(self._elements, self._layers)}
        return f"NetworkTables({sizes}, dtype={self.dtype.name})"

    def _refresh(self, model) -> None:
        key = _parameter_versions(model)
        if key != self._key:
            self._pack(model)
            self._key = key

    def _pack(self, model) -> None:
        dt = self.dtype
        layers = []
        with torch.no_grad():
            for el in model.elements:
                net, scaler = model.networks[el], model.scalers[el]
                ref = torch.zeros(1, scaler.n_features, dtype=torch.float64)
                sc64 = copy.deepcopy(scaler).to(device="cpu", dtype=torch.float64)
                offset = sc64(ref)[0]
                slope = sc64(ref + 1.0)[0] - offset
                el_layers = []
                for k, (lin, act) in enumerate(zip(net.linears, net.acts)):
                    w = lin.weight.detach().cpu().to(torch.float64)
                    b = lin.bias.detach().cpu().to(torch.float64)
                    if k == 0:                               # fold G' = slope * G + offset
                        b = b + w @ offset
                        w = w * slope[None, :]
                    if act.name not in ACTIVATIONS:
                        raise InputError(f"activation {act.name!r} of {el} has no numpy form")
                    w = w.numpy().astype(dt)
                    el_layers.append((np.ascontiguousarray(w.T), w, b.numpy().astype(dt),
                                      ACTIVATIONS[act.name], act.name))
                layers.append(el_layers)
        self._elements = list(model.elements)
        self._layers = layers
        self._flat = None
        self._scale = dt.type(float(model.energy_scale_buf))
        self._e_ref = model.atom_energy.detach().cpu().numpy().astype(dt)

    def evaluate(self, model, G: np.ndarray, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(e_atoms [N] eV, dE/dG [N, F])`` from raw symmetry functions ``G`` [N, F]
        (element e's functions in its first columns, the rest of dE/dG zero);
        ``rows[e]``: the atoms (row indices) of element e."""
        self._refresh(model)
        n = G.shape[0]
        e_atoms = np.empty(n, self.dtype)
        gG = np.zeros((n, G.shape[1]), self.dtype)
        for e, (layers, ix) in enumerate(zip(self._layers, rows)):
            if len(ix) == 0:
                continue
            f = layers[0][1].shape[1]
            h = G[ix, :f]
            slopes = []
            for wT, _, b, act, _ in layers:
                h, d = act(h @ wT + b)
                slopes.append(d)
            e_atoms[ix] = h[:, 0] * self._scale + self._e_ref[e]
            g = np.full((len(ix), 1), self._scale, self.dtype)
            for (_, w, _, _, _), d in zip(reversed(layers), reversed(slopes)):
                if d is not None:
                    g = g * d
                g = g @ w
            gG[ix, :f] = g
        return e_atoms, gG

    def packed(self, model) -> tuple:
        """The networks as flat arrays for :func:`atom_network` (rebuilt when ``model``
        changed): ``(n_layers [n_el], layers [n_el, L, 5] (weight offset, bias offset,
        inputs, outputs, activation code), weights (W [out, in] row-major, then b), scale,
        E_ref [n_el], width)``; ``width`` is the widest layer (scratch size)."""
        self._refresh(model)
        if self._flat is None:
            n_el = len(self._layers)
            L = max(len(ls) for ls in self._layers)
            n_layers = np.array([len(ls) for ls in self._layers], np.int64)
            table = np.zeros((n_el, L, 5), np.int64)
            chunks, off, width = [], 0, 1
            for e, ls in enumerate(self._layers):
                for k, (_, w, b, _, name) in enumerate(ls):
                    n_out, n_in = w.shape
                    table[e, k] = (off, off + w.size, n_in, n_out, ACTIVATION_CODES[name])
                    chunks += [w.ravel(), b]
                    off += w.size + b.size
                    width = max(width, n_in, n_out)
            self._flat = (n_layers, table, np.concatenate(chunks).astype(self.dtype),
                          self._scale, self._e_ref, width)
        return self._flat


if njit is not None:
    @njit(inline="always", cache=True)
    def _activate(code, z):
        """(f(z), f'(z)) of activation ``code`` (:data:`ACTIVATION_CODES`)."""
        if code == 1:                              # tanh
            t = math.tanh(z)
            return t, 1.0 - t * t
        if code == 0:                              # linear
            return z, 1.0
        if code == 2 or code == 7:                 # logistic, revlogistic
            s = 0.5 * (1.0 + math.tanh(0.5 * z))
            return (s, s * (1.0 - s)) if code == 2 else (1.0 - s, -s * (1.0 - s))
        if code == 3:                              # softplus
            if z > 35.0:
                return z, 1.0
            return max(z, 0.0) + math.log1p(math.exp(-abs(z))), 0.5 * (1.0 + math.tanh(0.5 * z))
        if code == 4:                              # relu
            return (z, 1.0) if z > 0.0 else (0.0, 0.0)
        if code == 5:                              # gaussian
            g = math.exp(-0.5 * z * z)
            return g, -z * g
        if code == 6:                              # cos
            return math.cos(z), -math.sin(z)
        if code == 8:                              # exp
            e = math.exp(-z)
            return e, -e
        return z * z, 2.0 * z                      # harmonic

    @njit(inline="always", cache=True)
    def atom_network(e, x, n_layers, layers, weights, scale, e_ref, H, D, g_out):
        """Energy (eV) of one atom of element ``e`` from its raw symmetry functions ``x``
        [F] (the network's inputs in its first columns) and dE/dx in ``g_out`` (zero past
        the element's inputs).  Scratch: ``H``, ``D`` [L + 1, width] (activations and slopes)."""
        n_in0 = layers[e, 0, 2]
        for q in range(n_in0):
            H[0, q] = x[q]
        L = n_layers[e]
        for k in range(L):
            wo, bo, n_in, n_out, code = (layers[e, k, 0], layers[e, k, 1], layers[e, k, 2],
                                         layers[e, k, 3], layers[e, k, 4])
            h_in = H[k, :n_in]
            for o in range(n_out):        # row views from 0: vectorised dot products
                w_row = weights[wo + o * n_in:wo + (o + 1) * n_in]
                z = weights[bo + o]
                for q in range(n_in):
                    z += w_row[q] * h_in[q]
                H[k + 1, o], D[k, o] = _activate(code, z)
        energy = H[L, 0] * scale + e_ref[e]
        # reverse mode: D[k] becomes dE/dz of layer k, H[k] dE/d(inputs of layer k)
        D[L - 1, 0] *= scale
        for q in range(g_out.shape[0]):
            g_out[q] = 0.0
        for k in range(L - 1, -1, -1):
            wo, n_in, n_out = layers[e, k, 0], layers[e, k, 2], layers[e, k, 3]
            g = g_out[:n_in] if k == 0 else H[k, :n_in]
            if k > 0:
                g[:] = 0.0
            for o in range(n_out):
                go = D[k, o]
                w_row = weights[wo + o * n_in:wo + (o + 1) * n_in]
                for q in range(n_in):
                    g[q] += go * w_row[q]
            if k > 0:
                for q in range(n_in):
                    D[k - 1, q] *= g[q]
        return energy
