"""``ACSF``: n2p2-compatible symmetry functions of an :class:`AtomsBatch` (torch module).

Functions are grouped by (central element, neighbour element) for type 2 and
(central element, unordered neighbour-element pair, type) for types 3 and 9.
Pairs are sorted once per batch by (element of i, element of j) so every
group is one contiguous, centre-sorted slice; triplets of a group are built
from those slices by index arithmetic.  Each group is evaluated with [n, K]
tensor operations and summed per centre with ``index_add``.  Type-9
functions with integer zeta go through angular moments instead of triplets
(see :mod:`mdmlkit.descriptors.terms`).  The only Python loop is over groups
(a few dozen), never over atoms, pairs or triplets.

Derivatives come from autograd through the pair vectors
``positions[j] - positions[i] + shift``; nothing is cached between calls
except index bookkeeping on the batch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from torch import nn

from ..errors import ModelMismatchError
from .batch import AtomsBatch, build_triplets
from .symfunc import SymmetryFunctionSet
from .terms import (angular_factors, binomial_lambda_table, monomial_table, monomials,
                    radial_factors)


#: Largest integer zeta evaluated through angular moments (cost ~ zeta^3 per pair).
MOMENT_ZETA_MAX = 8
ANGULAR_METHODS = ("auto", "triplets")


def _columns(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[:, idx], skipping the copy when idx is 0..n-1."""
    if idx.numel() == x.shape[1] and bool((idx == torch.arange(
            x.shape[1], device=idx.device)).all()):
        return x
    return x.index_select(1, idx)


def _moment_eligible(f) -> bool:
    return (f.type == 9 and float(f.zeta).is_integer() and 1 <= f.zeta <= MOMENT_ZETA_MAX
            and abs(f.lambda_) <= 1.0)


def _unique_index(rows: list[tuple]) -> tuple[list[tuple], list[int]]:
    uniq: list[tuple] = []
    index = []
    for r in rows:
        if r not in uniq:
            uniq.append(r)
        index.append(uniq.index(r))
    return uniq, index


class ACSF(nn.Module):
    """Atom-centred symmetry functions (n2p2 types 2, 3, 9) as a torch module.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        The functions; output columns follow its n2p2 sorted order.
    angular_method : {"auto", "triplets"}
        ``"auto"`` evaluates type-9 functions with integer zeta <= 8 and
        |lambda| <= 1 exactly through angular moments (O(pairs), see
        :mod:`mdmlkit.descriptors.terms`; accumulated in float64 whatever the
        module dtype) and everything else over explicit triplets;
        ``"triplets"`` uses triplets for all angular functions.

    Examples
    --------
    >>> acsf = ACSF(sfs).to(dtype=torch.float64)                # doctest: +SKIP
    >>> batch = AtomsBatch.from_atoms(frames, sfs.elements, sfs.cutoff)
    >>> batch.positions.requires_grad_(True)
    >>> G = acsf(batch)        # {"La": Tensor[n_La, n_features["La"]], ...}
    """

    def __init__(self, sfs: SymmetryFunctionSet, angular_method: str = "auto"):
        super().__init__()
        if angular_method not in ANGULAR_METHODS:
            raise ValueError(f"angular_method must be one of {ANGULAR_METHODS}")
        self.sfs = sfs
        self.angular_method = angular_method
        self.elements = list(sfs.elements)
        self.n_features = dict(sfs.n_features)
        self.cutoff_type = sfs.cutoff_type
        self.alpha = sfs.alpha
        n_el = len(self.elements)
        sp = {el: k for k, el in enumerate(self.elements)}
        f64 = dict(dtype=torch.float64)
        # Python-side plan; tensors live in buffers so .to() moves/casts them.
        self._radial: list[tuple] = []      # (c, e, name, K)
        self._moment: dict[int, dict] = {}  # c -> {"name", "n_max", "elements", "groups"}
        self._triplet: dict[int, dict] = {}  # c -> {"rname", "aname", "groups"}
        self._cols: dict[int, list[int]] = {c: [] for c in range(n_el)}
        self._order: dict[int, list[tuple]] = {c: [] for c in range(n_el)}
        trip_rc = trip3_rc = 0.0
        for c, el in enumerate(self.elements):
            rad: dict[int, list[int]] = {}
            mom: dict[tuple, list[int]] = {}
            trip: dict[tuple, list[int]] = {}
            fs = sfs.functions[el]
            for col, f in enumerate(fs):
                if not f.is_angular:
                    rad.setdefault(sp[f.e1], []).append(col)
                    continue
                pair = tuple(sorted((sp[f.e1], sp[f.e2])))
                if angular_method == "auto" and _moment_eligible(f):
                    mom.setdefault(pair, []).append(col)
                else:
                    trip.setdefault((pair, f.type), []).append(col)
                    trip_rc = max(trip_rc, f.rc)
                    if f.type == 3:
                        trip3_rc = max(trip3_rc, f.rc)
            for e, cols in sorted(rad.items()):
                p = torch.tensor([[fs[i].eta for i in cols], [fs[i].rs for i in cols],
                                  [fs[i].rc for i in cols]], **f64)
                name = f"_rad_{c}_{e}"
                self.register_buffer(name, p, persistent=False)
                self._radial.append((c, e, name, len(cols)))
                self._order[c].append(("rad", name))
                self._cols[c] += cols
            if mom:
                cols_all = [i for cols in mom.values() for i in cols]
                uniq, _ = _unique_index([(fs[i].eta, fs[i].rs, fs[i].rc) for i in cols_all])
                n_max = int(max(fs[i].zeta for i in cols_all))
                self.register_buffer(f"_mom_{c}", torch.tensor(uniq, **f64).T.contiguous(),
                                     persistent=False)
                groups = []
                for (e1, e2), cols in sorted(mom.items()):
                    ridx = [uniq.index((fs[i].eta, fs[i].rs, fs[i].rc)) for i in cols]
                    lam = torch.tensor([fs[i].lambda_ for i in cols], **f64)
                    zeta = torch.tensor([fs[i].zeta for i in cols], **f64)
                    name = f"_mom_{c}_{e1}_{e2}"
                    self.register_buffer(name + "_r", torch.tensor(ridx), persistent=False)
                    self.register_buffer(name + "_coef", binomial_lambda_table(lam, zeta, n_max),
                                         persistent=False)
                    self.register_buffer(name + "_pref", torch.exp2(1.0 - zeta), persistent=False)
                    self.register_buffer(name + "_diag", (1.0 + lam) ** zeta, persistent=False)
                    groups.append((e1, e2, name, len(cols)))
                    self._order[c].append(("mom", name))
                    self._cols[c] += cols
                _, deg, w = monomial_table(n_max)
                wdeg = np.zeros((len(deg), n_max + 1))
                wdeg[np.arange(len(deg)), deg] = w
                self.register_buffer(f"_mom_{c}_wdeg", torch.tensor(wdeg, **f64), persistent=False)
                self._moment[c] = {"name": f"_mom_{c}", "n_max": n_max, "groups": groups,
                                   "elements": sorted({e for g in groups for e in g[:2]}),
                                   "same": sorted({g[0] for g in groups if g[0] == g[1]})}
            if trip:
                cols_all = [i for cols in trip.values() for i in cols]
                ur, _ = _unique_index([(fs[i].eta, fs[i].rs, fs[i].rc) for i in cols_all])
                ua, _ = _unique_index([(fs[i].lambda_, fs[i].zeta) for i in cols_all])
                self.register_buffer(f"_tr_{c}_r", torch.tensor(ur, **f64).T.contiguous(),
                                     persistent=False)
                self.register_buffer(f"_tr_{c}_a", torch.tensor(ua, **f64).T.contiguous(),
                                     persistent=False)
                groups = []
                for ((e1, e2), t), cols in sorted(trip.items()):
                    name = f"_tr_{c}_{e1}_{e2}_{t}"
                    self.register_buffer(name + "_r", torch.tensor(
                        [ur.index((fs[i].eta, fs[i].rs, fs[i].rc)) for i in cols]),
                        persistent=False)
                    self.register_buffer(name + "_a", torch.tensor(
                        [ua.index((fs[i].lambda_, fs[i].zeta)) for i in cols]), persistent=False)
                    groups.append((e1, e2, t, name, len(cols)))
                    self._order[c].append(("trip", name))
                    self._cols[c] += cols
                self._triplet[c] = {"groups": groups}
        for c in range(n_el):
            inv = np.empty(len(self._cols[c]), dtype=np.int64)
            inv[np.asarray(self._cols[c], dtype=np.int64)] = np.arange(len(inv))
            self.register_buffer(f"_inv_{c}", torch.as_tensor(inv), persistent=False)
        self.cutoff = sfs.cutoff
        self.triplet_cutoff = trip_rc
        self.triplet3_cutoff = trip3_rc
        self.register_buffer("_dtype_probe", torch.zeros((), **f64), persistent=False)

    def extra_repr(self) -> str:
        n_mom = sum(g[-1] for m in self._moment.values() for g in m["groups"])
        n_tri = sum(g[-1] for m in self._triplet.values() for g in m["groups"])
        return (f"elements={self.elements}, n_features={self.n_features}, "
                f"cutoff={self.cutoff:g} Å, cutoff_type={self.cutoff_type}, "
                f"alpha={self.alpha:g}, angular: {n_mom} by moments, {n_tri} by triplets")

    def _apply(self, fn, *args, **kwargs):
        # keep the moment-path tables in float64 whatever dtype the module is cast to
        keep = {k: v for k, v in self._buffers.items()
                if k.startswith("_mom_") and v is not None and v.is_floating_point()}
        out = super()._apply(fn, *args, **kwargs)
        for k, v in keep.items():
            self._buffers[k] = self._buffers[k].to(torch.float64)
        return out

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype_probe.dtype

    @property
    def device(self) -> torch.device:
        return self._dtype_probe.device

    # --------------------------------------------------------- bookkeeping
    def _check(self, batch: AtomsBatch) -> None:
        if list(batch.elements) != self.elements:
            raise ModelMismatchError(f"batch elements {batch.elements} differ from the "
                                     f"symmetry functions' {self.elements}")
        if batch.cutoff + 1e-12 < self.cutoff:
            raise ModelMismatchError(f"batch neighbour cutoff {batch.cutoff} Å is smaller than "
                                     f"the largest symmetry-function cutoff {self.cutoff} Å")

    def _pair_groups(self, batch: AtomsBatch):
        """Pairs with r < cutoff sorted by (species_i, species_j); slice starts."""
        key = ("acsf_pairs", self.cutoff)
        if key not in batch._cache:
            n_el = len(self.elements)
            d = self._detached_vectors(batch).norm(dim=1)
            sel = torch.nonzero(d < self.cutoff).flatten()
            gkey = batch.species[batch.pair_i[sel]] * n_el + batch.species[batch.pair_j[sel]]
            order = torch.argsort(gkey, stable=True)
            sel = sel[order]
            counts = torch.bincount(gkey, minlength=n_el * n_el).tolist()
            starts = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
            ctr = batch.local_index[batch.pair_i[sel]]
            batch._cache[key] = (sel, ctr, starts)
        return batch._cache[key]

    def _triplets(self, batch: AtomsBatch, c: int, e1: int, e2: int, narrow: bool):
        """Triplets of centre element c with neighbours of elements e1, e2.

        Returns global pair indices (a, b) and the centres' rows: every
        unordered neighbour pair once (a < b within the e1 list when e1 == e2).
        Built directly per group from the centre-sorted pair slices by index
        arithmetic (no sort, no loop over atoms).  ``narrow``: keep only
        triplets with r_jk < the largest type-3 cutoff (f_c(r_jk) = 0 beyond).
        Cached on the batch.
        """
        key = ("acsf_triplets", self.cutoff, self.triplet_cutoff, c, e1, e2,
               self.triplet3_cutoff if narrow else None)
        if key in batch._cache:
            return batch._cache[key]
        if narrow:
            a, b, ctr = self._triplets(batch, c, e1, e2, narrow=False)
            v = self._detached_vectors(batch)
            keep = torch.nonzero((v[b] - v[a]).norm(dim=1) < self.triplet3_cutoff).flatten()
            batch._cache[key] = (a[keep], b[keep], ctr[keep])
            return batch._cache[key]
        n_el = len(self.elements)
        psel, pctr, pstart = self._pair_groups(batch)
        d = self._detached_vectors(batch).norm(dim=1)

        def close(e):
            s, t = pstart[c * n_el + e], pstart[c * n_el + e + 1]
            idx, ctr = psel[s:t], pctr[s:t]
            keep = torch.nonzero(d[idx] < self.triplet_cutoff).flatten()
            return idx[keep], ctr[keep]

        ia, ca = close(e1)
        n_c = int(batch.element_index[self.elements[c]].numel())
        if e1 == e2:
            p, q = build_triplets(ca, n_c)
            ib = ia
        else:
            ib, cb = close(e2)
            counts_b = torch.bincount(cb, minlength=n_c)
            start_b = torch.cumsum(counts_b, 0) - counts_b
            reps = counts_b[ca]
            p = torch.repeat_interleave(torch.arange(ca.numel(), device=ca.device), reps)
            run = torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
            q = (torch.repeat_interleave(start_b[ca], reps)
                 + torch.arange(p.numel(), device=ca.device) - run)
        batch._cache[key] = (ia[p], ib[q], ca[p])
        return batch._cache[key]

    @staticmethod
    def _detached_vectors(batch: AtomsBatch) -> torch.Tensor:
        """Pair vectors without autograd history (for index bookkeeping), cached."""
        if "detached_vectors" not in batch._cache:
            with torch.no_grad():
                batch._cache["detached_vectors"] = batch.pair_vectors()
        return batch._cache["detached_vectors"]

    # ------------------------------------------------------------- forward
    def forward(self, batch: AtomsBatch, strain: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Raw (unscaled) symmetry functions of every atom.

        Parameters
        ----------
        batch : AtomsBatch
            Structures (same elements, neighbour cutoff >= ``self.cutoff``).
        strain : Tensor [S, 3, 3], optional
            Homogeneous strain applied to every pair vector (see
            :meth:`AtomsBatch.pair_vectors`); pass a zero tensor with
            ``requires_grad`` to get the virial by autograd.

        Returns
        -------
        dict[str, Tensor]
            ``G[el]``: [n atoms of el, n_features[el]], rows in the order of
            ``batch.element_index[el]``, columns in n2p2 sorted order.
        """
        self._check(batch)
        vec = batch.pair_vectors(strain).to(self.dtype)
        dist = vec.norm(dim=1)
        n_el = len(self.elements)
        counts = [int(batch.element_index[el].numel()) for el in self.elements]
        zeros = lambda *shape, dtype=vec.dtype: torch.zeros(  # noqa: E731
            *shape, dtype=dtype, device=vec.device)
        parts: dict[str, torch.Tensor] = {}
        psel, pctr, pstart = self._pair_groups(batch)
        ct, al = self.cutoff_type, self.alpha

        # type 2
        for c, e, name, k in self._radial:
            s, t = pstart[c * n_el + e], pstart[c * n_el + e + 1]
            idx = psel[s:t]
            p = getattr(self, name)
            R = radial_factors(dist.index_select(0, idx), p[0], p[1], p[2], ct, al)
            parts[name] = zeros(counts[c], k).index_add(0, pctr[s:t], R)

        # type 9 by angular moments (float64 accumulation)
        if self._moment:
            vec64 = vec.to(torch.float64)
            dist64 = vec64.norm(dim=1)
        for c, plan in self._moment.items():
            p = getattr(self, plan["name"])
            n_max = plan["n_max"]
            wdeg = getattr(self, plan["name"] + "_wdeg")
            mom, diag = {}, {}
            for e in plan["elements"]:
                s, t = pstart[c * n_el + e], pstart[c * n_el + e + 1]
                idx, ctr = psel[s:t], pctr[s:t]
                r = dist64.index_select(0, idx)
                R = radial_factors(r, p[0], p[1], p[2], ct, al)            # [P, U]
                mono = monomials(vec64.index_select(0, idx) / r[:, None], n_max)          # [P, M]
                mom[e] = zeros(counts[c], R.shape[1], mono.shape[1], dtype=torch.float64
                               ).index_add(0, ctr, R[:, :, None] * mono[:, None, :])
                if e in plan["same"]:
                    diag[e] = zeros(counts[c], R.shape[1], dtype=torch.float64
                                    ).index_add(0, ctr, R * R)
            for e1, e2, name, k in plan["groups"]:
                S = (mom[e1] * mom[e2]) @ wdeg                            # [n, U, n_max+1]
                ridx = getattr(self, name + "_r")
                val = (S[:, ridx, :] * getattr(self, name + "_coef")[None]).sum(-1)
                if e1 == e2:
                    val = 0.5 * (val - getattr(self, name + "_diag") * diag[e1][:, ridx])
                parts[name] = (val * getattr(self, name + "_pref")).to(vec.dtype)

        # types 3 and 9 over explicit triplets
        for c, plan in self._triplet.items():
            pr, pa = getattr(self, f"_tr_{c}_r"), getattr(self, f"_tr_{c}_a")
            Rp = None
            for e1, e2, t, name, k in plan["groups"]:
                a, b, ctr = self._triplets(batch, c, e1, e2, narrow=(t == 3))
                if a.numel() == 0:
                    parts[name] = zeros(counts[c], k)
                    continue
                if Rp is None:
                    Rp = radial_factors(dist, pr[0], pr[1], pr[2], ct, al)     # all pairs
                va, vb = vec.index_select(0, a), vec.index_select(0, b)
                cos = (va * vb).sum(dim=1) / (dist.index_select(0, a) * dist.index_select(0, b))
                rad = Rp.index_select(0, a) * Rp.index_select(0, b)
                if t == 3:    # r_jk from the two pair vectors: right for periodic images
                    rad = rad * radial_factors((vb - va).norm(dim=1), pr[0], pr[1], pr[2],
                                               ct, al)
                ang = angular_factors(cos, pa[0], pa[1])
                term = (_columns(rad, getattr(self, name + "_r"))
                        * _columns(ang, getattr(self, name + "_a")))
                parts[name] = zeros(counts[c], k).index_add(0, ctr, term)

        out = {}
        for c, el in enumerate(self.elements):
            if self._order[c]:
                cat = torch.cat([parts[name] for _, name in self._order[c]], dim=1)
                out[el] = cat[:, getattr(self, f"_inv_{c}")]
            else:
                out[el] = zeros(counts[c], 0)
        return out

    # ------------------------------------------------------------- helpers
    def compute(self, frames: Atoms | Sequence[Atoms], batch_size: int = 32,
                neighbor_method: str = "auto", progress: bool = False
                ) -> dict[str, np.ndarray]:
        """Symmetry functions of many structures as numpy arrays (no gradients).

        Returns ``{el: array [n atoms of el over all frames, n_features[el]]}``,
        rows in frame order then atom order.
        """
        from tqdm.auto import tqdm

        if isinstance(frames, Atoms):
            frames = [frames]
        frames = list(frames)
        out: dict[str, list[np.ndarray]] = {el: [] for el in self.elements}
        starts = range(0, len(frames), batch_size)
        for s in tqdm(starts, desc="symmetry functions", disable=not progress):
            batch = AtomsBatch.from_atoms(frames[s:s + batch_size], self.elements, self.cutoff,
                                          device=self.device, dtype=self.dtype,
                                          neighbor_method=neighbor_method)
            with torch.no_grad():
                G = self(batch)
            for el in self.elements:
                out[el].append(G[el].cpu().numpy())
        return {el: (np.concatenate(v) if v else np.zeros((0, self.n_features[el])))
                for el, v in out.items()}
