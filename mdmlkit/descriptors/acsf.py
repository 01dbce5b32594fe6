"""``ACSF``: n2p2-compatible symmetry functions of an :class:`AtomsBatch` (torch module).

Functions are grouped by (central element, neighbour element) for type 2 and
(central element, unordered neighbour-element pair, type) for types 3 and 9.
Pairs within the cutoff are sorted once per batch by (element of i, element
of j, i); the order itself depends only on the species and is kept across
:meth:`AtomsBatch.with_positions` copies, so a step of MD only filters it by
distance.  The pairs of every centre element are laid out in a padded
[atoms, neighbour slots] table, one block of slots per neighbour element
(empty slots point to a dummy pair beyond every cutoff, which contributes
exact zeros); radial sums are then dense reductions over the slots and the
angular moments of type 9 (:mod:`mdmlkit.descriptors.terms`) one batched
matrix product per (centre, neighbour) element block -- no scatter of
[pairs x moments] tensors forward or backward.  Radial functions that reach
beyond the angular functions' cutoff (long-range radial functions, cheap per
pair) read a second tier of tables with all pairs, so that the angular
moments still run over the pairs within their own, shorter cutoff only.  Angular functions that
cannot use moments (type 3, non-integer zeta) are evaluated over explicit
triplets built by index arithmetic.  The only Python loops are over element
blocks (a few dozen), never over atoms, pairs or triplets.

Derivatives come from autograd through the pair vectors
``positions[j] - positions[i] + shift``; nothing is cached between calls
except index bookkeeping on the batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms
from torch import nn

from mdmlkit.descriptors.batch import AtomsBatch, build_triplets
from mdmlkit.descriptors.cutoff import cutoff_function
from mdmlkit.descriptors.symfunc import SymmetryFunctionSet
from mdmlkit.descriptors.terms import (
    angular_factors,
    degree_sum_table,
    harmonic_recurrence_table,
    legendre_lambda_table,
    radial_factors,
    solid_harmonics,
)
from mdmlkit.errors import InputError, ModelMismatchError

#: Largest integer zeta evaluated through angular moments (cost ~ (zeta + 1)^2 per pair).
MOMENT_ZETA_MAX = 8
ANGULAR_METHODS = ("auto", "triplets")


def _columns(x: torch.Tensor, idx: torch.Tensor, identity: bool) -> torch.Tensor:
    """x[:, idx], skipping the copy when idx is 0..n-1 (``identity``, known from the plan)."""
    return x if identity else x.index_select(1, idx)


def _uniform_rc(values) -> float | None:
    values = [float(v) for v in values]
    return values[0] if values and all(v == values[0] for v in values) else None


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


@dataclass(frozen=True)
class MomentTables:
    """The type-9 moment functions of one centre element (float64, CPU).

    Attributes
    ----------
    elements : tuple of int
        Neighbour elements (indices into ``ACSF.elements``) whose moments are formed.
    n_max : int
        Largest degree l (the largest zeta).
    params : ndarray [3, U]
        Rows eta (Å^-2), rs (Å), rc (Å) of the U distinct radial factors.
    g1, g2 : ndarray [G]
        Positions in ``elements`` of the two neighbour elements of each group.
    spectrum_map : ndarray [F, G*U*(n_max+1) + E*U]
        The functions as ``cat([P.flatten(), diag]) @ spectrum_map.T`` from the power
        spectrum P[g, u, l] = Σ_m M[g1[g], u, lm] M[g2[g], u, lm] of the moments
        M[e, u, lm] = Σ_j R_u(r_ij) S_lm(u_ij) and diag[e, u] = Σ_j R_u(r_ij)².
    """

    elements: tuple[int, ...]
    n_max: int
    params: np.ndarray
    g1: np.ndarray
    g2: np.ndarray
    spectrum_map: np.ndarray


@dataclass(frozen=True)
class ACSFPlan:
    """What compiled kernels need of an :class:`ACSF`: its tables, and the padded-table
    entry points of the eager module (``ACSF.plan()``).

    The padded path evaluates radial (type 2) and moment (type 9, integer zeta <= 8,
    |lambda| <= 1) functions on per-(centre element c, neighbour element e) padded
    neighbour tables: tier 0 holds the pairs within ``short_cutoff``, tier 1 (only for
    radial functions reaching further) those within ``cutoff``.

    Attributes
    ----------
    elements : tuple of str
    cutoff_type : int
    alpha : float
    cutoff, short_cutoff : float
        Largest cutoff and the angular (moment) functions' cutoff, Å.
    padded : bool
        Every function runs on padded tables (no explicit triplets); the entry points
        below need it.
    blocks : tuple of (c, e, tier)
        The padded tables, in the order of :meth:`padded_layout`.
    columns : dict c -> tuple of (kind, e, params)
        Blocks of columns of centre element c in assembly order: ``("radial", e,
        [3, K] eta/rs/rc)`` (type-2 functions with neighbour element e) or
        ``("moments", None, None)`` (all moment functions of c, see ``moments``).
    inverse : dict c -> ndarray [n_features]
        n2p2 column f of element c is assembled column ``inverse[c][f]``.
    moments : dict c -> MomentTables
    """

    elements: tuple[str, ...]
    cutoff_type: int
    alpha: float
    cutoff: float
    short_cutoff: float
    padded: bool
    blocks: tuple[tuple[int, int, int], ...]
    columns: dict[int, tuple[tuple[str, int | None, np.ndarray | None], ...]]
    inverse: dict[int, np.ndarray]
    moments: dict[int, MomentTables]
    acsf: ACSF = field(repr=False, compare=False)

    def padded_layout(self, batch: AtomsBatch) -> list[torch.Tensor]:
        """Per block, a LongTensor [n_c, nb] of ``batch``'s pair indices (empty slots: the
        number of pairs P, meant for :meth:`far_vector`); valid while ``batch``'s Verlet
        list is (pairs beyond rc contribute exactly zero)."""
        return self.acsf._padded_layout(batch)

    def far_vector(self, like: torch.Tensor) -> torch.Tensor:
        """[1, 3] pair vector beyond every cutoff (Å): the value of empty padded slots."""
        return self.acsf._far_vector(like)

    def dense_parts(self, c: int, blocks: dict[tuple[int, int], torch.Tensor]) -> dict[str, torch.Tensor]:
        """Column blocks of centre element c from ``blocks[e, tier]`` [n_c, nb, 3] pair
        vectors (Å; empty slots :meth:`far_vector`); pure tensor code, compilable."""
        return self.acsf._dense_parts(c, blocks)

    def dense_empty(self, c: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """The (empty) column blocks of a centre element without atoms."""
        return self.acsf._dense_empty(c, like)

    def assemble(self, parts: dict[str, torch.Tensor], counts: list[int],
                 like: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{el: G [n_el, n_features[el]]}`` in n2p2 order from the column blocks
        (``counts``: atoms per element)."""
        return self.acsf._assemble(parts, counts, like)


class ACSF(nn.Module):
    """Atom-centred symmetry functions (n2p2 types 2, 3, 9) as a torch module.

    Parameters
    ----------
    sfs : SymmetryFunctionSet
        The functions; output columns follow its n2p2 sorted order.
    angular_method : {"auto", "triplets"}
        ``"auto"`` evaluates type-9 functions with integer zeta <= 8 and
        |lambda| <= 1 exactly through angular moments (O(pairs), see
        :mod:`mdmlkit.descriptors.terms`: solid-harmonic moments, well conditioned
        in float32 too) and everything else over explicit triplets;
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
            raise InputError(f"angular_method must be one of {ANGULAR_METHODS}")
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
        self._radial: list[tuple] = []      # (c, (e, tier), name, K)
        self._moment: dict[int, dict] = {}  # c -> {"name", "n_max", "elements", "groups"}
        self._triplet: dict[int, dict] = {}  # c -> {"rname", "aname", "groups"}
        self._cols: dict[int, list[int]] = {c: [] for c in range(n_el)}
        self._order: dict[int, list[tuple]] = {c: [] for c in range(n_el)}
        self._rc: dict[str, float | None] = {}   # block -> its common rc (None: mixed)
        self._identity: dict[str, bool] = {}     # triplet column maps that are 0..k-1
        trip_rc = trip3_rc = 0.0
        # Two tiers of padded tables: tier 0 holds the pairs within the moment functions'
        # cutoff (or every pair when there are none); radial functions with a longer rc
        # read tier 1 (all pairs), so that long-range radial functions do not make the
        # expensive angular moments run over their many extra neighbours.
        mom_rcs = [f.rc for f in sfs if f.is_angular and angular_method == "auto"
                   and _moment_eligible(f)]
        self.short_cutoff = max(mom_rcs) if mom_rcs else sfs.cutoff
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
            tiers = {}
            for e, cols_e in rad.items():
                for i in cols_e:
                    tiers.setdefault((e, int(fs[i].rc > self.short_cutoff)), []).append(i)
            for (e, tier), cols in sorted(tiers.items()):
                p = torch.tensor([[fs[i].eta for i in cols], [fs[i].rs for i in cols],
                                  [fs[i].rc for i in cols]], **f64)
                name = f"_rad_{c}_{e}" if tier == 0 else f"_radL_{c}_{e}"
                self.register_buffer(name, p, persistent=False)
                self._rc[name] = _uniform_rc([fs[i].rc for i in cols])
                self._radial.append((c, (e, tier), name, len(cols)))
                self._order[c].append(("rad", name))
                self._cols[c] += cols
            if mom:
                cols_all = [i for cols in mom.values() for i in cols]
                uniq, _ = _unique_index([(fs[i].eta, fs[i].rs, fs[i].rc) for i in cols_all])
                n_max = int(max(fs[i].zeta for i in cols_all))
                self.register_buffer(f"_mom_{c}", torch.tensor(uniq, **f64).T.contiguous(),
                                     persistent=False)
                self._rc[f"_mom_{c}"] = _uniform_rc([u[2] for u in uniq])
                # function-level tables: every moment function of c in one set of tensor ops
                groups, elems = [], sorted({e for pair in mom for e in pair})
                fidx, didx, coef, pref, diagc, half = [], [], [], [], [], []
                for g, ((e1, e2), cols) in enumerate(sorted(mom.items())):
                    ridx = [uniq.index((fs[i].eta, fs[i].rs, fs[i].rc)) for i in cols]
                    lam = torch.tensor([fs[i].lambda_ for i in cols], **f64)
                    zeta = torch.tensor([fs[i].zeta for i in cols], **f64)
                    fidx += [g * len(uniq) + u for u in ridx]
                    didx += [elems.index(e1) * len(uniq) + u for u in ridx]
                    coef.append(legendre_lambda_table(lam, zeta, n_max))
                    pref.append(torch.exp2(1.0 - zeta))
                    same = e1 == e2     # same-element sums: drop j = k, count each pair once
                    diagc.append((1.0 + lam) ** zeta if same else torch.zeros_like(lam))
                    half.append(torch.full_like(lam, 0.5 if same else 1.0))
                    groups.append((e1, e2, len(cols)))
                    self._cols[c] += cols
                name = f"_mom_{c}"
                self._order[c].append(("mom", name + "_all"))
                for key, val in (("_fidx", torch.tensor(fidx)), ("_didx", torch.tensor(didx)),
                                 ("_g1", torch.tensor([elems.index(g[0]) for g in groups])),
                                 ("_g2", torch.tensor([elems.index(g[1]) for g in groups])),
                                 ("_coef", torch.cat(coef)), ("_pref", torch.cat(pref)),
                                 ("_diagc", torch.cat(diagc)), ("_half", torch.cat(half)),
                                 ("_lsum", degree_sum_table(n_max)),
                                 ("_shrec", harmonic_recurrence_table(n_max))):
                    self.register_buffer(name + key, val, persistent=False)
                self._moment[c] = {"name": name, "n_max": n_max, "groups": groups,
                                   "elements": elems, "n_functions": len(fidx)}
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
                    for suffix, n_all in (("_r", len(ur)), ("_a", len(ua))):
                        idx = getattr(self, name + suffix).tolist()
                        self._identity[name + suffix] = idx == list(range(n_all))
                    groups.append((e1, e2, t, name, len(cols)))
                    self._order[c].append(("trip", name))
                    self._cols[c] += cols
                self._triplet[c] = {"groups": groups}
                self._rc[f"_tr_{c}_r"] = _uniform_rc([u[2] for u in ur])
        for c in range(n_el):
            inv = np.empty(len(self._cols[c]), dtype=np.int64)
            inv[np.asarray(self._cols[c], dtype=np.int64)] = np.arange(len(inv))
            self.register_buffer(f"_inv_{c}", torch.as_tensor(inv), persistent=False)
        self.cutoff = sfs.cutoff
        self._triplet_cutoff = trip_rc
        self._triplet3_cutoff = trip3_rc
        self.register_buffer("_dtype_probe", torch.zeros((), **f64), persistent=False)
        self._plan_tables = self._tables()

    def _tables(self) -> dict:
        """The float64 tables of :class:`ACSFPlan` (made once, before any ``.to()``).

        Copies, never views of the module's buffers: a buffer's storage can move under a
        view (``share_memory_()``, which torch's multiprocessing pickler applies to every
        tensor sent to a worker process, frees the old storage), and a plan reading freed
        memory would build kernels on garbage."""
        columns, moments = {}, {}
        for c in range(len(self.elements)):
            cols = []
            for kind, name in self._order[c]:
                if kind == "rad":
                    e = next(key[0] for cc, key, nm, _ in self._radial if nm == name)
                    cols.append(("radial", e, getattr(self, name).detach().cpu().double().numpy().copy()))
                elif kind == "mom":
                    cols.append(("moments", None, None))
            columns[c] = tuple(cols)
        for c, m in self._moment.items():
            g1, g2, W = self._moment_spectrum_map(c)
            moments[c] = MomentTables(tuple(m["elements"]), m["n_max"],
                                      getattr(self, m["name"]).detach().cpu().double().numpy().copy(),
                                      g1.numpy().copy(), g2.numpy().copy(), W.numpy().copy())
        inverse = {c: getattr(self, f"_inv_{c}").cpu().numpy().copy() for c in range(len(self.elements))}
        return {"columns": columns, "moments": moments, "inverse": inverse}

    def plan(self) -> ACSFPlan:
        """The tables and padded-table entry points compiled kernels use (:class:`ACSFPlan`)."""
        blocks = tuple((c, e, t) for c in self._dense_elements for e, t in self._dense_neighbours(c))
        return ACSFPlan(tuple(self.elements), self.cutoff_type, self.alpha, self.cutoff, self.short_cutoff,
                        self._supports_padded, blocks, acsf=self, **self._plan_tables)

    def extra_repr(self) -> str:
        n_mom = sum(m["n_functions"] for m in self._moment.values())
        n_tri = sum(g[-1] for m in self._triplet.values() for g in m["groups"])
        short = (f" (angular {self.short_cutoff:g} Å)" if self.short_cutoff < self.cutoff else "")
        return (f"elements={self.elements}, n_features={self.n_features}, "
                f"cutoff={self.cutoff:g} Å{short}, cutoff_type={self.cutoff_type}, "
                f"alpha={self.alpha:g}, angular: {n_mom} by moments, {n_tri} by triplets")

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

    def _pair_groups(self, batch: AtomsBatch, within_cutoff: bool = True,
                     cutoff: float | None = None):
        """Pairs with r < cutoff (default :attr:`cutoff`) sorted by (species_i, species_j, i);
        slice starts.

        ``within_cutoff=False``: all pairs of the batch's list (a Verlet list for
        ``rc + skin``), so that the result depends on the pair list only, not on the
        positions (for :meth:`_padded_layout`); with a ``cutoff`` below :attr:`cutoff`,
        the pairs within ``cutoff + skin`` now (skin = ``batch.cutoff - self.cutoff``),
        which stays a superset of the pairs within ``cutoff`` while the list is valid.

        Returns ``(sel, ctr, starts)``: batch pair indices in group order, the
        centre's row within its element, and the start of group ``c * n_el +
        e`` in ``sel`` (``starts[-1] == len(sel)``).  Positions in ``sel`` are
        the *compact* pair ids used by :meth:`forward`.  The species order is
        computed once per pair list (``batch._static``), the distance filter
        once per positions (``batch._cache``).
        """
        cutoff = self.cutoff if cutoff is None else float(cutoff)
        key = ("acsf_pairs", cutoff, within_cutoff)
        store = batch._cache if within_cutoff else batch._static
        if key not in store:
            n_el = len(self.elements)
            skey = ("acsf_pair_order", n_el)
            if skey not in batch._static:
                gkey = batch.species[batch.pair_i] * n_el + batch.species[batch.pair_j]
                order = torch.argsort(gkey, stable=True)
                batch._static[skey] = (order, gkey[order], batch.local_index[batch.pair_i[order]])
            order, gkey, ctr = batch._static[skey]
            skin = max(batch.cutoff - self.cutoff, 0.0)
            if not within_cutoff and cutoff + skin >= batch.cutoff:     # every pair of the list
                keep = torch.ones_like(order, dtype=torch.bool)
            else:
                reach = cutoff if within_cutoff else cutoff + skin
                keep = batch.detached_vectors().index_select(0, order).norm(dim=1) < reach
            sel, gkey, ctr = order[keep], gkey[keep], ctr[keep]
            counts = torch.bincount(gkey, minlength=n_el * n_el).tolist()
            starts = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
            store[key] = (sel, ctr, starts)
        return store[key]

    def _padded(self, batch: AtomsBatch, within_cutoff: bool = True, cutoff: float | None = None):
        """Padded neighbour tables of every (centre element, neighbour element), cached.

        Returns ``(pads, nb)`` with ``pads[c][e]`` [n_c * nb[c][e]]: the compact
        pair ids of the element-e neighbours of every element-c atom,
        row-major [atom, slot], ``nb[c][e]`` being the largest number of e
        neighbours of any c atom; empty slots hold the dummy id ``len(sel)``.
        Built for all blocks at once by index arithmetic.  ``cutoff``: as
        :meth:`_pair_groups` (the compact ids are positions in its ``sel``).
        """
        cutoff = self.cutoff if cutoff is None else float(cutoff)
        key = ("acsf_padded", cutoff, within_cutoff)
        store = batch._cache if within_cutoff else batch._static
        if key in store:
            return store[key]
        sel, pctr, pstart = self._pair_groups(batch, within_cutoff, cutoff)
        n_el = len(self.elements)
        counts = [int(batch.element_index[el].numel()) for el in self.elements]
        n_max_c = max(counts + [1])
        dev = sel.device
        sizes = torch.as_tensor(np.diff(pstart), device=dev)
        block = torch.repeat_interleave(torch.arange(n_el * n_el, device=dev), sizes)   # c*n_el+e
        flat = block * n_max_c + pctr              # ascending: pairs are (c, e, centre) sorted
        cnt = torch.bincount(flat, minlength=n_el * n_el * n_max_c)
        nb_t = cnt.view(n_el * n_el, n_max_c).amax(dim=1)
        n_c_t = torch.as_tensor(counts, device=dev).repeat_interleave(n_el)
        size_t = n_c_t * nb_t                                        # padded size of each block
        base = torch.cumsum(size_t, 0) - size_t
        start = torch.cumsum(cnt, 0) - cnt
        rank = torch.arange(sel.numel(), device=dev) - start[flat]
        slot = base[block] + pctr * nb_t[block] + rank
        pad = torch.full((int(size_t.sum()),), sel.numel(), dtype=torch.long, device=dev)
        pad[slot] = torch.arange(sel.numel(), device=dev)
        chunks = pad.split(size_t.tolist())
        nb_l = nb_t.tolist()
        pads = [list(chunks[c * n_el:(c + 1) * n_el]) for c in range(n_el)]
        nb = [nb_l[c * n_el:(c + 1) * n_el] for c in range(n_el)]
        store[key] = (pads, nb)
        return store[key]

    def _triplets(self, batch: AtomsBatch, c: int, e1: int, e2: int, narrow: bool):
        """Triplets of centre element c with neighbours of elements e1, e2.

        Returns compact pair ids (a, b) and the centres' rows: every
        unordered neighbour pair once (a < b within the e1 list when e1 == e2).
        Built directly per group from the centre-sorted pair slices by index
        arithmetic (no sort, no loop over atoms).  ``narrow``: keep only
        triplets with r_jk < the largest type-3 cutoff (f_c(r_jk) = 0 beyond).
        Cached on the batch.
        """
        key = ("acsf_triplets", self.cutoff, self._triplet_cutoff, c, e1, e2,
               self._triplet3_cutoff if narrow else None)
        if key in batch._cache:
            return batch._cache[key]
        if narrow:
            a, b, ctr = self._triplets(batch, c, e1, e2, narrow=False)
            v = self._compact_vectors(batch)
            keep = torch.nonzero((v[b] - v[a]).norm(dim=1) < self._triplet3_cutoff).flatten()
            batch._cache[key] = (a[keep], b[keep], ctr[keep])
            return batch._cache[key]
        n_el = len(self.elements)
        _, pctr, pstart = self._pair_groups(batch)
        d = self._compact_vectors(batch).norm(dim=1)

        def close(e):
            s, t = pstart[c * n_el + e], pstart[c * n_el + e + 1]
            keep = torch.nonzero(d[s:t] < self._triplet_cutoff).flatten()
            return keep + s, pctr[s:t][keep]

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

    def _compact_vectors(self, batch: AtomsBatch) -> torch.Tensor:
        """Detached vectors of the pairs within cutoff, in compact (group) order, cached."""
        key = ("acsf_compact_vectors", self.cutoff)
        if key not in batch._cache:
            sel, _, _ = self._pair_groups(batch)
            batch._cache[key] = batch.detached_vectors().index_select(0, sel)
        return batch._cache[key]

    def _cutoff_cache(self):
        """``fc_of(r, rc)``: f_c(r; rc) evaluated once per (dtype, rc); None when rc is None
        (functions of a block with different cutoffs evaluate f_c themselves)."""
        fcs: dict = {}

        def fc_of(r: torch.Tensor, rc: float | None):
            if rc is None:
                return None
            if (r.dtype, rc) not in fcs:
                fcs[(r.dtype, rc)] = cutoff_function(r, rc, self.cutoff_type, self.alpha)
            return fcs[(r.dtype, rc)]
        return fc_of

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
        counts = [int(batch.element_index[el].numel()) for el in self.elements]
        psel, pctr, pstart = self._pair_groups(batch)
        vec = batch.pair_vectors(strain, index=psel).to(self.dtype)       # compact pairs [Ps, 3]
        zeros = lambda *shape, dtype=vec.dtype: torch.zeros(  # noqa: E731
            *shape, dtype=dtype, device=vec.device)
        parts: dict[str, torch.Tensor] = {}
        ct, al = self.cutoff_type, self.alpha

        # types 2 and 9 (moments) over the padded neighbour tables of each centre element
        tables = {}
        for tier in self._tiers:
            rc = self._tier_cutoff(tier)
            if rc == self.cutoff:
                v = vec
            else:
                v = batch.pair_vectors(strain, index=self._pair_groups(batch, cutoff=rc)[0])
            tables[tier] = (torch.cat([v.to(self.dtype), self._far_vector(vec)]),
                            *self._padded(batch, cutoff=rc))
        for c in self._dense_elements:
            if counts[c] == 0:
                parts.update(self._dense_empty(c, vec))
                continue
            blocks = {}
            for e, tier in self._dense_neighbours(c):
                vec_ext, pads, nb = tables[tier]
                blocks[e, tier] = vec_ext.index_select(0, pads[c][e]).view(counts[c], nb[c][e], 3)
            parts.update(self._dense_parts(c, blocks))

        # types 3 and 9 over explicit triplets (compact pair ids)
        if self._triplet:
            dist = vec.norm(dim=1)
        for c, plan in self._triplet.items():
            pr, pa = getattr(self, f"_tr_{c}_r"), getattr(self, f"_tr_{c}_a")
            Rp = None
            for e1, e2, t, name, k in plan["groups"]:
                a, b, ctr = self._triplets(batch, c, e1, e2, narrow=(t == 3))
                if a.numel() == 0:
                    parts[name] = zeros(counts[c], k)
                    continue
                if Rp is None:
                    rc = self._rc[f"_tr_{c}_r"]
                    fc = None if rc is None else cutoff_function(dist, rc, ct, al)
                    Rp = radial_factors(dist, pr[0], pr[1], pr[2], ct, al, fc=fc)   # all pairs
                va, vb = vec.index_select(0, a), vec.index_select(0, b)
                cos = (va * vb).sum(dim=1) / (dist.index_select(0, a) * dist.index_select(0, b))
                rad = Rp.index_select(0, a) * Rp.index_select(0, b)
                if t == 3:    # r_jk from the two pair vectors: right for periodic images
                    rad = rad * radial_factors((vb - va).norm(dim=1), pr[0], pr[1], pr[2],
                                               ct, al)
                ang = angular_factors(cos, pa[0], pa[1])
                term = (_columns(rad, getattr(self, name + "_r"), self._identity[name + "_r"])
                        * _columns(ang, getattr(self, name + "_a"), self._identity[name + "_a"]))
                parts[name] = zeros(counts[c], k).index_add(0, ctr, term)

        return self._assemble(parts, counts, vec)

    # ------------------------------------------- dense (padded-table) kernels
    @property
    def _dense_elements(self) -> list[int]:
        """Centre elements with type-2 or moment type-9 functions."""
        return sorted({c for c, *_ in self._radial} | set(self._moment))

    @property
    def _supports_padded(self) -> bool:
        """True when every function is evaluated on padded neighbour tables (no
        explicit triplets), so that :meth:`_dense_parts` + :meth:`_assemble` give all of G."""
        return not self._triplet

    @property
    def _tiers(self) -> list[int]:
        """Tiers of padded tables in use: 0 (pairs within :attr:`short_cutoff`) and, when
        some radial functions reach further, 1 (pairs within :attr:`cutoff`)."""
        return sorted({t for c in self._dense_elements for _, t in self._dense_neighbours(c)})

    def _tier_cutoff(self, tier: int) -> float:
        """Cutoff (Å) of the pairs in the padded tables of ``tier``."""
        return self.short_cutoff if tier == 0 else self.cutoff

    def _dense_neighbours(self, c: int) -> list[tuple[int, int]]:
        """``(neighbour element, tier)`` of the padded tables the functions of centre
        element c read (tier 0: pairs within :attr:`short_cutoff`; 1: within :attr:`cutoff`)."""
        rad = {key for cc, key, *_ in self._radial if cc == c}
        plan = self._moment.get(c)
        return sorted(rad | {(e, 0) for e in (plan["elements"] if plan is not None else [])})

    def _far_vector(self, like: torch.Tensor) -> torch.Tensor:
        """[1, 3] pair vector beyond every cutoff: the value of empty padded slots (R = 0 and
        dR/dr = 0 exactly there)."""
        far = torch.zeros(1, 3, dtype=like.dtype, device=like.device)
        far[0, 0] = 2.0 * self.cutoff + 1.0
        return far

    def _padded_layout(self, batch: AtomsBatch) -> list[torch.Tensor]:
        """The pairs of ``batch``'s list (whatever their length) as padded tables.

        Returns, for every block in the order of :attr:`_dense_elements` x
        :meth:`_dense_neighbours` (c), a LongTensor [n_c, nb] of the batch's pair
        indices (empty slots: the number of pairs P, meant for :meth:`_far_vector`).
        Tier-1 tables hold every pair of the list, tier-0 tables the pairs within
        :attr:`short_cutoff` + skin of the current positions.  With a Verlet list
        (cutoff ``rc + skin``) made at these positions the tables stay valid while the
        list does: pairs beyond rc contribute exactly zero (f_c = 0 with zero slope).
        """
        counts = [int(batch.element_index[el].numel()) for el in self.elements]
        n_pairs = int(batch.pair_i.numel())
        per_tier = {}
        for tier in self._tiers:
            rc = self._tier_cutoff(tier)
            sel, _, _ = self._pair_groups(batch, within_cutoff=False, cutoff=rc)
            pads, nb = self._padded(batch, within_cutoff=False, cutoff=rc)
            per_tier[tier] = (torch.cat([sel, sel.new_full((1,), n_pairs)]), pads, nb)
        tables = []
        for c in self._dense_elements:
            for e, tier in self._dense_neighbours(c):
                sel, pads, nb = per_tier[tier]
                tables.append(sel[pads[c][e]].view(counts[c], nb[c][e]))
        return tables

    def _dense_empty(self, c: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """The (empty) blocks of :meth:`_dense_parts` for a centre element without atoms."""
        parts = {name: like.new_zeros(0, k) for cc, _, name, k in self._radial if cc == c}
        plan = self._moment.get(c)
        if plan is not None:
            parts[plan["name"] + "_all"] = like.new_zeros(0, plan["n_functions"])
        return parts

    def _dense_parts(self, c: int, blocks: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Type-2 and moment type-9 functions of the atoms of centre element c.

        ``blocks[e, tier]``: [n_c, nb, 3] pair vectors (Å) to the element-e neighbours
        (within the tier's cutoff) of every element-c atom, one row per atom, empty slots
        filled with :meth:`_far_vector` (or any vector longer than the cutoffs);
        ``(e, tier)`` runs over :meth:`_dense_neighbours`.  Pure tensor code (no data-dependent Python), so it
        can be compiled.  Returns the blocks of columns, to :meth:`_assemble`.
        """
        ct, al = self.cutoff_type, self.alpha
        parts: dict[str, torch.Tensor] = {}
        rad = {key: (name, k) for cc, key, name, k in self._radial if cc == c}
        plan = self._moment.get(c)
        mom_el = [(e, 0) for e in plan["elements"]] if plan is not None else []
        if plan is not None:
            pm = getattr(self, plan["name"])
            n_max = plan["n_max"]
            mom, diag = [], []
        # one block of neighbour slots per neighbour element: contiguous [n_c, nb, ...]
        # tensors (fast batched matmuls; no slicing, whose backward fills full-size zeros)
        for e in self._dense_neighbours(c):
            v = blocks[e]
            r = v.norm(dim=2)                                          # [n_c, nb]
            fc_of = self._cutoff_cache()
            R = None
            if e in rad:
                name, k = rad[e]
                pr = getattr(self, name)
                rc = self._rc[name]
                if (e in mom_el and rc is not None
                        and rc == self._rc[plan["name"]]):
                    # type-2 and moment radial factors of this block in one go
                    pr = torch.cat([pr, pm], dim=1)
                    G2, R = radial_factors(r, pr[0], pr[1], pr[2], ct, al,
                                           fc=fc_of(r, rc)).split([k, pm.shape[1]], dim=-1)
                else:
                    G2 = radial_factors(r, pr[0], pr[1], pr[2], ct, al, fc=fc_of(r, rc))
                parts[name] = G2.sum(dim=1)
            if e not in mom_el:
                continue
            if R is None:
                R = radial_factors(r, pm[0], pm[1], pm[2], ct, al,
                                   fc=fc_of(r, self._rc[plan["name"]]))     # [n_c, nb, U]
            sh = solid_harmonics(v / r[..., None], n_max,
                                 getattr(self, plan["name"] + "_shrec"))  # [n_c, nb, H]
            mom.append(torch.bmm(R.transpose(1, 2), sh))                # [n_c, U, H]
            diag.append((R * R).sum(dim=1))                             # [n_c, U]
        if plan is None:
            return parts
        parts[plan["name"] + "_all"] = self._moment_values(c, torch.stack(mom, dim=1),
                                                          torch.cat(diag, dim=1))
        return parts

    def _moment_values(self, c: int, moments: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
        """All type-9 moment functions [n, F] of centre element c from its pair sums.

        ``moments`` [n, E, U, H]: M_lm = sum_j R_u(r_ij) S_lm(u_ij) over the neighbours
        of each element of ``_moment[c]["elements"]`` (E), unique radial factors (U) and
        harmonics (H = (n_max + 1)^2); ``diag`` [n, E * U]: sum_j R_u(r_ij)^2 (the j = k
        terms).  Products of the two neighbour elements' moments summed per degree l
        (the Legendre power spectrum), then each function's Legendre sum over degrees
        (see :mod:`~mdmlkit.descriptors.terms`).  Differentiable in both inputs.
        """
        name = self._moment[c]["name"]
        prod = moments.index_select(1, getattr(self, name + "_g1")) * moments.index_select(
            1, getattr(self, name + "_g2"))                             # [n, G, U, H]
        S = (prod @ getattr(self, name + "_lsum")).flatten(1, 2)         # [n, G*U, n_max+1]
        val = (S.index_select(1, getattr(self, name + "_fidx"))
               * getattr(self, name + "_coef")).sum(-1)                  # [n, F]
        dg = diag.index_select(1, getattr(self, name + "_didx"))
        val = getattr(self, name + "_half") * (val - getattr(self, name + "_diagc") * dg)
        return val * getattr(self, name + "_pref")

    def _moment_spectrum_map(self, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`_moment_values` as one linear map of the power spectrum and the diagonal.

        Returns ``(g1 [G], g2 [G], W [F, G*U*L + E*U])`` (W in float64): with the power
        spectrum P[g, u, l] = sum_m M[g1[g], u, lm] M[g2[g], u, lm] of the moments of
        :meth:`_moment_values` and its ``diag`` [E*U], the functions are
        ``cat([P.flatten(), diag]) @ W.T``.  Used by kernels that form P themselves.
        """
        name = self._moment[c]["name"]
        get = lambda key: getattr(self, name + key).detach().cpu()   # noqa: E731
        coef, fidx, didx = get("_coef").double(), get("_fidx"), get("_didx")
        scale = (get("_half") * get("_pref")).double()
        n_f, n_l = coef.shape
        n_u = getattr(self, name).shape[1]
        n_s = len(self._moment[c]["groups"]) * n_u * n_l
        W = torch.zeros(n_f, n_s + len(self._moment[c]["elements"]) * n_u, dtype=torch.float64)
        rows = torch.arange(n_f)
        W[rows[:, None], fidx[:, None] * n_l + torch.arange(n_l)[None, :]] = scale[:, None] * coef
        W[rows, n_s + didx] = -scale * get("_diagc").double()
        return get("_g1"), get("_g2"), W

    def _assemble(self, parts: dict[str, torch.Tensor], counts: list[int],
                 like: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{el: G [n_el, n_features[el]]}`` in n2p2 column order from the blocks of
        columns computed by :meth:`forward` (``counts``: atoms per element)."""
        out = {}
        for c, el in enumerate(self.elements):
            if self._order[c]:
                cat = torch.cat([parts[name] for _, name in self._order[c]], dim=1)
                out[el] = cat[:, getattr(self, f"_inv_{c}")]
            else:
                out[el] = like.new_zeros(counts[c], 0)
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
