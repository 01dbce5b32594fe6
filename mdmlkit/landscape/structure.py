"""Local structure of metal clusters: neighbours, common-neighbour analysis, motifs.

Everything here works on one ``ase.Atoms`` (a cluster of up to ~1000 atoms,
or a periodic crystal whose cell is at least twice the cutoff high) with dense
``[N, N]`` numpy arrays; there are no Python loops over atoms or bonds.

Bond cutoff
-----------
Two atoms are bonded when ``r_ij < cutoff`` (Å).  ``cutoff=None`` picks an
*adaptive* cutoff per structure (:func:`adaptive_cutoff`)::

    d1     = median of the pair distances r < 1.3 * (median nearest-neighbour distance)
    cutoff = (1 + sqrt(2)) / 2 * d1

For fcc/hcp the first shell is at ``d1`` and the second at ``sqrt(2) d1``, so
this is the midpoint between the shells, as in adaptive CNA (Stukowski, Modelling
Simul. Mater. Sci. Eng. 20, 045021 (2012)), but with one cutoff for the whole
structure (bonds stay symmetric, and under-coordinated surface atoms do not inflate
it).  ``d1`` is the centre of the first peak of the pair-distance distribution:
unlike the nearest-neighbour distance alone it is not biased low by thermal
vibrations, so the cutoff stays between the shells in hot frames.  For EMT Cu it
is 3.0-3.1 Å at 0-2000 K (bulk Cu: d1 = 2.55 Å, cutoff 3.08 Å).  Pass a number
(e.g. :data:`CU_CUTOFF`) to fix it instead.

CNA signatures
--------------
For each bond (i, j) the Honeycutt-Andersen / Faken-Jonsson triplet (j, k, l):
``j`` = number of common neighbours of i and j, ``k`` = number of bonds among
those common neighbours, ``l`` = number of bonds in the largest connected cluster
of those bonds ("longest chain"; the convention of OVITO and asap3).  fcc atoms
have 12 x (4,2,1), hcp 6 x (4,2,1) + 6 x (4,2,2), the centre of an icosahedron
12 x (5,5,5), and an atom on a five-fold (decahedral) axis 10 x (4,2,2) +
2 x (5,5,5).

Defects of icosahedra
---------------------
A Mackay icosahedron of k shells (13, 55, 147, 309 ... atoms) has only seven per-atom
CNA environments (:data:`MACKAY_ENVIRONMENTS`): the centre (12 x 555), atoms on the six
five-fold axes (10 x 422 + 2 x 555), interior atoms on the twin planes between its 20
fcc tetrahedra (6 x 421 + 6 x 422) and inside them (12 x 421), and the surface vertices
(5 x 322 + 555), edges (4 x 311 + 2 x 322 + 2 x 422) and (111) facets (6 x 311 +
3 x 421).  :func:`icosahedral_defects` counts the atoms of a structure that are in none
of these environments (*defect atoms*) and names two surface defects:

* **adatom**: an atom with at most 4 neighbours (a Mackay surface has none below 6;
  an atom in a hollow of a (111) facet has 3).  At a closed-shell size an adatom
  comes with a vacancy, e.g. the vertex vacancy + facet adatom of Cu55 and Cu147;
* **rosette**: a bond with 6 or more common neighbours (6 x 6-ring, signature (6,6,6)),
  the ring that forms when a surface vertex sinks into the shell below (Aprà, Baletto,
  Ferrando & Fortunelli, Phys. Rev. Lett. 93, 065502 (2004)).  A Mackay icosahedron
  has at most five-membered rings.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from sklearn.base import BaseEstimator, TransformerMixin

from mdmlkit.errors import InputError
from mdmlkit.landscape._checks import check_atoms_list
from mdmlkit.utils import check_frames

__all__ = [
    "CU_CUTOFF", "FCC_SHELL_FACTOR", "ATOM_MOTIFS", "CLUSTER_MOTIFS",
    "distance_matrix", "adaptive_cutoff", "neighbor_matrix", "CNAResult",
    "common_neighbour_analysis", "atom_motifs", "motif_fractions", "coordination_stats",
    "motif_label", "MotifClassifier", "MACKAY_ENVIRONMENTS", "ADATOM_MAX_CN",
    "IcosahedralDefects", "cna_environments", "icosahedral_defects",
]

#: Fixed bond cutoff for Cu (Å): midway between the first (2.55 Å) and second
#: (3.61 Å) neighbour shells of fcc Cu.
CU_CUTOFF = 3.05
#: Cutoff / first-shell distance ratio: midpoint between the fcc shells d and sqrt(2) d.
FCC_SHELL_FACTOR = (1.0 + np.sqrt(2.0)) / 2.0
#: Per-atom classes returned by :func:`atom_motifs`.
ATOM_MOTIFS = ("fcc", "hcp", "ico", "decahedral axis", "other")
#: Whole-cluster labels returned by :func:`motif_label`.
CLUSTER_MOTIFS = ("icosahedral", "decahedral", "fcc-like", "amorphous")

_S421, _S422, _S555 = (4, 2, 1), (4, 2, 2), (5, 5, 5)

#: Per-atom CNA environments of ideal Mackay icosahedra (any number of shells), each as
#: ``((signature, count), ...)`` sorted by signature: centre, five-fold axis, twin plane,
#: interior fcc, surface vertex, edge, (111) facet (module docstring).
MACKAY_ENVIRONMENTS = frozenset({
    (((5, 5, 5), 12),),
    (((4, 2, 2), 10), ((5, 5, 5), 2)),
    (((4, 2, 1), 6), ((4, 2, 2), 6)),
    (((4, 2, 1), 12),),
    (((3, 2, 2), 5), ((5, 5, 5), 1)),
    (((3, 1, 1), 4), ((3, 2, 2), 2), ((4, 2, 2), 2)),
    (((3, 1, 1), 6), ((4, 2, 1), 3)),
})
#: Largest coordination of an *adatom* (:func:`icosahedral_defects`).
ADATOM_MAX_CN = 4


# ----------------------------------------------------------------------------- distances

def _validated(atoms: Atoms, source: str) -> Atoms:
    if not isinstance(atoms, Atoms):
        raise InputError(f"{source}: expected ase.Atoms, got {type(atoms).__name__}")
    check_frames([atoms], source=source)
    return atoms


def distance_matrix(atoms: Atoms) -> np.ndarray:
    """All interatomic distances ``[N, N]`` (Å).

    Non-periodic structures use plain Cartesian distances; periodic directions use
    the minimum-image convention (so each pair is counted once: periodic cells must be
    more than twice the cutoff high for the bond analysis, see :func:`neighbor_matrix`).
    """
    _validated(atoms, "distance_matrix")
    pos = atoms.get_positions()
    if atoms.pbc.any():
        from ase.geometry import get_distances

        _, d = get_distances(pos, cell=atoms.cell, pbc=atoms.pbc)
        return d
    diff = pos[:, None, :] - pos[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def adaptive_cutoff(atoms: Atoms, distances: np.ndarray | None = None) -> float:
    """Bond cutoff (Å) midway between the first and second neighbour shells.

    ``(1 + sqrt 2) / 2 * d1`` with ``d1`` the median of the pair distances shorter than
    1.3 x the median nearest-neighbour distance (the first-peak position); see the
    module docstring for the justification.

    Raises
    ------
    InputError
        fewer than two atoms.
    """
    if len(atoms) < 2:
        raise InputError(f"adaptive_cutoff: {len(atoms)} atom(s); at least 2 are needed "
                         "to estimate the first neighbour shell (pass cutoff=...)")
    d = distance_matrix(atoms) if distances is None else distances
    off = d[~np.eye(len(d), dtype=bool)].reshape(len(d), len(d) - 1)
    d_nn = np.median(off.min(axis=1))
    first_shell = off[off < 1.3 * d_nn]
    return float(FCC_SHELL_FACTOR * np.median(first_shell))


def _adjacency(atoms: Atoms, cutoff: float | None, source: str) -> tuple[np.ndarray, float]:
    _validated(atoms, source)
    n = len(atoms)
    if n == 0:
        return np.zeros((0, 0), dtype=bool), float(cutoff or 0.0)
    d = distance_matrix(atoms)
    if cutoff is None:
        rc = adaptive_cutoff(atoms, d) if n > 1 else 0.0
    else:
        rc = float(cutoff)
        if not np.isfinite(rc) or rc <= 0:
            raise InputError(f"{source}: cutoff must be a positive number of Å, got {cutoff!r}")
    if atoms.pbc.any():
        cell = atoms.cell
        heights = cell.volume / cell.areas() if cell.rank == 3 else np.zeros(3)
        if np.any(heights[atoms.pbc] <= 2 * rc):
            raise InputError(
                f"{source}: periodic cell heights {np.round(heights, 3).tolist()} Å must exceed "
                f"2 x cutoff = {2 * rc:.3f} Å (repeat the cell)")
    adj = d < rc
    np.fill_diagonal(adj, False)
    return adj, rc


def neighbor_matrix(atoms: Atoms, cutoff: float | None = None) -> np.ndarray:
    """Boolean adjacency ``[N, N]``: ``True`` where ``r_ij < cutoff`` (Å), ``i != j``.

    ``cutoff=None`` uses :func:`adaptive_cutoff` (module docstring).
    """
    return _adjacency(atoms, cutoff, "neighbor_matrix")[0]


# ----------------------------------------------------------------------------- CNA

@dataclass(frozen=True, eq=False)
class CNAResult:
    """Common-neighbour analysis of one structure.

    Attributes
    ----------
    bonds : int array [B, 2]
        bonded pairs ``i < j``.
    signatures : int array [B, 3]
        the (j, k, l) triplet of each bond.
    coordination : int array [N]
        number of bonds of each atom.
    cutoff : float
        bond cutoff used (Å).
    """

    bonds: np.ndarray
    signatures: np.ndarray
    coordination: np.ndarray
    cutoff: float

    @property
    def n_atoms(self) -> int:
        return len(self.coordination)

    def total(self) -> dict[tuple[int, int, int], int]:
        """Number of bonds with each signature, ``{(j, k, l): count}``."""
        sig, cnt = np.unique(self.signatures, axis=0, return_counts=True)
        return {tuple(int(x) for x in s): int(c) for s, c in zip(sig, cnt)}

    def count(self, signature: Sequence[int]) -> np.ndarray:
        """Per-atom number of bonds ``[N]`` having ``signature`` (j, k, l)."""
        hit = np.all(self.signatures == np.asarray(signature), axis=1)
        return np.bincount(self.bonds[hit].ravel(), minlength=self.n_atoms)

    def per_atom(self) -> list[dict[tuple[int, int, int], int]]:
        """Per-atom signature counts, ``[{(j, k, l): count}, ...]`` (for inspection)."""
        sig, inv = np.unique(self.signatures, axis=0, return_inverse=True)
        inv = inv.ravel()
        counts = np.zeros((self.n_atoms, len(sig)), dtype=np.int64)
        np.add.at(counts, (self.bonds[:, 0], inv), 1)
        np.add.at(counts, (self.bonds[:, 1], inv), 1)
        keys = [tuple(int(x) for x in s) for s in sig]
        return [{keys[c]: int(row[c]) for c in np.nonzero(row)[0]} for row in counts]

    def __repr__(self) -> str:
        top = sorted(self.total().items(), key=lambda kv: -kv[1])[:4]
        tops = ", ".join(f"{''.join(map(str, s))}:{c}" for s, c in top)
        return (f"CNAResult(n_atoms={self.n_atoms}, n_bonds={len(self.bonds)}, "
                f"cutoff={self.cutoff:.3f} Å, top=[{tops}])")


def _cna_from_adjacency(adj: np.ndarray, cutoff: float) -> CNAResult:
    i, j = np.nonzero(np.triu(adj, 1))
    bonds = np.stack([i, j], axis=1).astype(np.int64)
    cn = adj.sum(axis=1).astype(np.int64)
    if len(i) == 0:
        return CNAResult(bonds, np.zeros((0, 3), dtype=np.int64), cn, cutoff)
    common = adj[i] & adj[j]                                   # [B, N]
    n_common = common.sum(axis=1)
    m = max(int(n_common.max()), 1)
    # common neighbours of each bond as padded index lists [B, m]
    rows, cols = np.nonzero(common)                            # row-major: grouped by bond
    first = np.concatenate([[0], np.cumsum(n_common)[:-1]])
    slot = np.arange(len(rows)) - first[rows]
    idx = np.zeros((len(i), m), dtype=np.int64)
    valid = np.zeros((len(i), m), dtype=bool)
    idx[rows, slot] = cols
    valid[rows, slot] = True
    # bonds among the common neighbours [B, m, m]
    sub = adj[idx[:, :, None], idx[:, None, :]] & valid[:, :, None] & valid[:, None, :]
    deg = sub.sum(axis=2)
    k = deg.sum(axis=1) // 2
    # connected components by repeated squaring of the reachability matrix
    reach = (sub | np.eye(m, dtype=bool)).astype(np.float32)
    for _ in range(int(np.ceil(np.log2(m))) if m > 1 else 0):
        reach = (np.matmul(reach, reach) > 0).astype(np.float32)
    edges_in_component = np.einsum("bpq,bq->bp", reach, deg.astype(np.float32)) / 2
    l_chain = np.rint(edges_in_component.max(axis=1)).astype(np.int64)
    sig = np.stack([n_common, k, l_chain], axis=1).astype(np.int64)
    return CNAResult(bonds, sig, cn, cutoff)


def common_neighbour_analysis(atoms: Atoms, cutoff: float | None = None) -> CNAResult:
    """CNA (j, k, l) signature of every bond of ``atoms`` (see module docstring).

    Parameters
    ----------
    atoms : ase.Atoms
    cutoff : float, optional
        bond cutoff in Å; ``None`` = :func:`adaptive_cutoff`.
    """
    adj, rc = _adjacency(atoms, cutoff, "common_neighbour_analysis")
    return _cna_from_adjacency(adj, rc)


def _classify(cna: CNAResult) -> np.ndarray:
    cn = cna.coordination
    n421, n422, n555 = (cna.count(s) for s in (_S421, _S422, _S555))
    out = np.full(cna.n_atoms, "other", dtype=object)
    twelve = cn == 12
    out[twelve & (n421 == 12)] = "fcc"
    out[twelve & (n421 == 6) & (n422 == 6)] = "hcp"
    out[twelve & (n555 == 12)] = "ico"
    out[twelve & (n422 == 10) & (n555 == 2)] = "decahedral axis"
    return out.astype(str)


def atom_motifs(atoms: Atoms, cutoff: float | None = None) -> np.ndarray:
    """Per-atom local structure ``[N]`` (str), one of :data:`ATOM_MOTIFS`.

    ``"fcc"``: 12 x 421; ``"hcp"``: 6 x 421 + 6 x 422 (also twin planes and stacking
    faults); ``"ico"``: 12 x 555 (centre of an icosahedron); ``"decahedral axis"``:
    10 x 422 + 2 x 555 (atom on a five-fold axis, in decahedra and along the six axes of
    Mackay icosahedra); ``"other"``: anything else (surface, defects, liquid).
    """
    return _classify(common_neighbour_analysis(atoms, cutoff))


def motif_fractions(atoms: Atoms, cutoff: float | None = None,
                    surface_cn: int = 10) -> dict[str, float]:
    """Fractions of atoms in each of :data:`ATOM_MOTIFS` plus bond and interior statistics.

    Returns a dict with ``"fcc"``, ``"hcp"``, ``"ico"``, ``"decahedral axis"``,
    ``"other"`` (fractions of all atoms, summing to 1), ``"interior"`` (fraction with
    coordination >= ``surface_cn``), ``"ordered_interior"`` (fraction of interior atoms
    that are not ``"other"``), and ``"bonds_421"``, ``"bonds_422"``, ``"bonds_555"``
    (fractions of bonds).
    """
    cna = common_neighbour_analysis(atoms, cutoff)
    return _fractions(cna, _classify(cna), surface_cn)


def _fractions(cna: CNAResult, motifs: np.ndarray, surface_cn: int) -> dict[str, float]:
    n = max(cna.n_atoms, 1)
    out = {m: float(np.count_nonzero(motifs == m)) / n for m in ATOM_MOTIFS}
    interior = cna.coordination >= surface_cn
    out["interior"] = float(interior.sum()) / n
    out["ordered_interior"] = (float(np.count_nonzero(motifs[interior] != "other")) / interior.sum()
                               if interior.any() else 0.0)
    nb = max(len(cna.signatures), 1)
    for s in (_S421, _S422, _S555):
        out["bonds_" + "".join(map(str, s))] = float(np.all(cna.signatures == s, axis=1).sum()) / nb
    return out


def coordination_stats(atoms: Atoms, cutoff: float | None = None,
                       surface_cn: int = 10) -> dict[str, float]:
    """Coordination-number statistics of ``atoms``.

    Returns ``{"mean", "std", "min", "max", "surface_fraction", "cutoff"}``; an atom is
    counted as surface when its coordination is below ``surface_cn`` (default 10: the
    (111) facet atoms of fcc clusters have 9 neighbours, interior atoms 12).  ``cutoff``
    (Å) is reported as used.
    """
    adj, rc = _adjacency(atoms, cutoff, "coordination_stats")
    cn = adj.sum(axis=1)
    if len(cn) == 0:
        raise InputError("coordination_stats: structure has no atoms")
    return {"mean": float(cn.mean()), "std": float(cn.std()), "min": int(cn.min()),
            "max": int(cn.max()), "surface_fraction": float(np.mean(cn < surface_cn)),
            "cutoff": rc}


# ----------------------------------------------------------------------------- cluster labels

def _label_from(cna: CNAResult, motifs: np.ndarray, surface_cn: int, min_order: float) -> str:
    interior = cna.coordination >= surface_cn
    if not interior.any():
        return "amorphous"
    inner = motifs[interior]
    if np.mean(inner != "other") < min_order:
        return "amorphous"
    if np.any(motifs == "ico"):
        return "icosahedral"
    if np.any(motifs == "decahedral axis"):
        return "decahedral"
    if np.any((motifs == "fcc") | (motifs == "hcp")):
        return "fcc-like"
    return "amorphous"


def motif_label(atoms: Atoms, cutoff: float | None = None, surface_cn: int = 10,
                min_order: float = 0.5) -> str:
    """Structural motif of a whole cluster, one of :data:`CLUSTER_MOTIFS`.

    Rules, applied in order to the per-atom classes of :func:`atom_motifs`
    ("interior" = coordination >= ``surface_cn``, default 10):

    1. ``"amorphous"`` when there is no interior atom, or when fewer than ``min_order``
       (default 0.5) of the interior atoms have an ordered signature (fcc, hcp, ico or
       five-fold axis) -- liquid and strongly disordered clusters;
    2. ``"icosahedral"`` when some atom is an icosahedral centre (12 x 555);
    3. ``"decahedral"`` when some atom lies on a five-fold axis (10 x 422 + 2 x 555)
       but none is an icosahedral centre (a Mackay icosahedron also has five-fold-axis
       atoms, so rule 2 goes first);
    4. ``"fcc-like"`` when the ordered atoms are fcc/hcp only (single crystals, twins,
       stacking faults);
    5. otherwise ``"amorphous"``.

    Cu13 has a single interior atom: the relaxed icosahedron's centre is 12 x 555
    (100 % ordered, rule 2), while in a hot, disordered Cu13 it is not (rule 1).
    """
    cna = common_neighbour_analysis(atoms, cutoff)
    return _label_from(cna, _classify(cna), surface_cn, min_order)


class MotifClassifier(TransformerMixin, BaseEstimator):
    """Label frames by structural motif (stateless sklearn-style transformer).

    ``transform(frames)`` returns an object array ``[n_frames]`` of labels from
    :data:`CLUSTER_MOTIFS` (rules in :func:`motif_label`); ``fractions(frames)`` returns
    the :func:`motif_fractions` dicts.

    Parameters
    ----------
    cutoff : float, optional
        bond cutoff (Å); ``None`` = adaptive per frame.
    surface_cn, min_order :
        see :func:`motif_label`.
    progress : bool
        show a tqdm progress bar.
    """

    def __init__(self, cutoff: float | None = None, surface_cn: int = 10,
                 min_order: float = 0.5, progress: bool = False):
        self.cutoff = cutoff
        self.surface_cn = surface_cn
        self.min_order = min_order
        self.progress = progress

    def fit(self, frames: Sequence[Atoms] | Atoms, y: Any = None) -> MotifClassifier:
        check_atoms_list(frames, "MotifClassifier.fit")
        return self

    def _iter(self, frames: Sequence[Atoms], what: str):
        from tqdm.auto import tqdm

        return tqdm(frames, desc=what, disable=not self.progress, leave=True)

    def transform(self, frames: Sequence[Atoms] | Atoms) -> np.ndarray:
        frames = check_atoms_list(frames, "MotifClassifier.transform")
        out = np.empty(len(frames), dtype=object)
        for f, atoms in enumerate(self._iter(frames, "motifs")):
            cna = common_neighbour_analysis(atoms, self.cutoff)
            out[f] = _label_from(cna, _classify(cna), self.surface_cn, self.min_order)
        return out

    def predict(self, frames: Sequence[Atoms] | Atoms) -> np.ndarray:
        """Alias of :meth:`transform`."""
        return self.transform(frames)

    def fractions(self, frames: Sequence[Atoms] | Atoms) -> list[dict[str, float]]:
        """:func:`motif_fractions` of each frame."""
        frames = check_atoms_list(frames, "MotifClassifier.fractions")
        out = []
        for atoms in self._iter(frames, "motif fractions"):
            cna = common_neighbour_analysis(atoms, self.cutoff)
            out.append(_fractions(cna, _classify(cna), self.surface_cn))
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


# ----------------------------------------------------------------------------- icosahedral defects

def cna_environments(atoms: Atoms, cutoff: float | None = None) -> list[tuple]:
    """Per-atom CNA environment ``((signature, count), ...)`` sorted by signature, in the
    form of :data:`MACKAY_ENVIRONMENTS` (``cutoff`` in Å; ``None`` = adaptive)."""
    cna = common_neighbour_analysis(atoms, cutoff)
    return [tuple(sorted(d.items())) for d in cna.per_atom()]


@dataclass(frozen=True, eq=False)
class IcosahedralDefects:
    """Icosahedral order and surface defects of one structure (:func:`icosahedral_defects`).

    Attributes
    ----------
    centres : int array
        Atoms with 12 x 555 (centres of icosahedra).
    defect_atoms : int array
        Atoms whose CNA environment is not one of :data:`MACKAY_ENVIRONMENTS`.
    mackay_fraction : float
        Fraction of the atoms in a Mackay environment, ``1 - len(defect_atoms) / n_atoms``.
    adatoms : int array
        Atoms with at most ``adatom_cn`` neighbours.
    rosette_bonds : int array [k, 2]
        Bonds with 6 or more common neighbours (six-membered rings).
    cutoff : float
        Bond cutoff used (Å).
    """

    centres: np.ndarray
    defect_atoms: np.ndarray
    mackay_fraction: float
    adatoms: np.ndarray
    rosette_bonds: np.ndarray
    cutoff: float

    @property
    def is_mackay(self) -> bool:
        """A complete Mackay icosahedron: an icosahedral centre and no defect atom."""
        return bool(self.centres.size) and not self.defect_atoms.size

    def __repr__(self) -> str:
        return (f"IcosahedralDefects({self.centres.size} centre(s), Mackay fraction "
                f"{self.mackay_fraction:.2f}, {self.defect_atoms.size} defect atom(s), "
                f"{self.adatoms.size} adatom(s), {len(self.rosette_bonds)} rosette bond(s), "
                f"cutoff {self.cutoff:.3f} Å)")


def icosahedral_defects(atoms: Atoms, cutoff: float | None = None,
                        adatom_cn: int = ADATOM_MAX_CN) -> IcosahedralDefects:
    """Compare every atom's CNA environment with those of a Mackay icosahedron.

    See "Defects of icosahedra" in the module docstring.  ``cutoff`` (Å; ``None`` =
    :func:`adaptive_cutoff`); ``adatom_cn``: largest coordination of an adatom.

    Raises
    ------
    InputError
        ``adatom_cn`` not a non-negative integer, or a bad cutoff (see :func:`neighbor_matrix`).
    """
    if isinstance(adatom_cn, bool) or not isinstance(adatom_cn, (int, np.integer)) \
            or adatom_cn < 0:
        raise InputError(f"icosahedral_defects: adatom_cn must be an integer >= 0, "
                         f"got {adatom_cn!r}")
    adj, rc = _adjacency(atoms, cutoff, "icosahedral_defects")
    cna = _cna_from_adjacency(adj, rc)
    env = [tuple(sorted(d.items())) for d in cna.per_atom()]
    defect = np.array([k for k, e in enumerate(env) if e not in MACKAY_ENVIRONMENTS],
                      dtype=np.int64)
    n = max(cna.n_atoms, 1)
    return IcosahedralDefects(
        centres=np.flatnonzero((cna.coordination == 12) & (cna.count(_S555) == 12)),
        defect_atoms=defect,
        mackay_fraction=1.0 - defect.size / n if cna.n_atoms else 0.0,
        adatoms=np.flatnonzero(cna.coordination <= adatom_cn),
        rosette_bonds=cna.bonds[cna.signatures[:, 0] >= 6] if len(cna.bonds)
        else np.zeros((0, 2), dtype=np.int64),
        cutoff=rc)
