"""Queries by name: ``make_query("autoencoder", latent_dim=4)``."""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from mdmlkit.active.queries.autoencoder import AutoencoderQuery
from mdmlkit.active.queries.base import Query
from mdmlkit.active.queries.committee import CommitteeQuery
from mdmlkit.active.queries.extrapolation import ExtrapolationQuery
from mdmlkit.active.queries.farthest_point import FarthestPointQuery
from mdmlkit.active.queries.random_query import RandomQuery
from mdmlkit.errors import InputError

__all__ = ["QUERIES", "make_query"]

#: The built-in strategies by their ``name``.
QUERIES: Mapping[str, type[Query]] = MappingProxyType(
    {cls.name: cls for cls in (AutoencoderQuery, CommitteeQuery, ExtrapolationQuery, FarthestPointQuery,
                                 RandomQuery)})


def make_query(name: str, **params: Any) -> Query:
    """A new query of strategy ``name`` (a key of :data:`QUERIES`) with ``params``.

    Raises :class:`~mdmlkit.errors.InputError` for an unknown name or parameter.
    """
    if name not in QUERIES:
        raise InputError(f"unknown query {name!r}; choose from {sorted(QUERIES)}")
    cls = QUERIES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(f"{cls.__name__} ({name!r}) has no parameter(s) {unknown}; "
                         f"parameters: {accepted}")
    return cls(**params)
