"""Shared base of the queries that work on symmetry-function descriptors (AE, FPS)."""
from __future__ import annotations

from typing import Any, ClassVar

from mdmlkit.active.features import DescriptorCache, DescriptorTable, check_table
from mdmlkit.active.queries.base import LoopContext, Query
from mdmlkit.errors import EmptyTrajectoryError, InputError, ModelMismatchError

__all__ = ["DescriptorQuery"]


class DescriptorQuery(Query):
    """A query on the raw symmetry functions of ``sfs``, computed through a cache.

    Descriptors come from the ``cache`` parameter when given (share one object
    between queries or with a loop), else from a private
    :class:`~mdmlkit.active.DescriptorCache` (attribute ``cache_``) created on first
    use.  Inputs may also be :class:`~mdmlkit.active.DescriptorTable` objects.
    """

    loop_inputs: ClassVar[tuple[str, ...]] = ("sfs", "cache")

    def loop_params(self, context: LoopContext) -> dict[str, Any]:
        """The loop's ``sfs`` and ``cache`` where missing; the cache only if it computes the
        symmetry functions this query will use."""
        params = super().loop_params(context)
        sfs = params.get("sfs", self.sfs)
        cache = params.get("cache")
        if "cache" in params and (cache is None or sfs is None or not cache.describes(sfs)):
            del params["cache"]
        return params

    def descriptor_cache(self) -> DescriptorCache:
        """The cache this query computes descriptors with (see the class docstring)."""
        if self.sfs is None:
            raise InputError(f"{type(self).__name__}: no symmetry functions: pass "
                             "sfs=model.sfs (or a SymmetryFunctionSet)")
        cache = self.cache
        if cache is None:
            cache = getattr(self, "cache_", None)
            if cache is None or not cache.describes(self.sfs):
                cache = self.cache_ = DescriptorCache(self.sfs)
        elif not cache.describes(self.sfs):
            raise ModelMismatchError(f"{type(self).__name__}: the cache computes other symmetry "
                                     "functions than the query's sfs")
        return cache

    def descriptor_table(self, frames, source: str) -> DescriptorTable:
        """Descriptors of ``frames`` (Atoms or a ready DescriptorTable), checked."""
        if isinstance(frames, DescriptorTable):
            if frames.n_structures == 0:
                raise EmptyTrajectoryError(f"{source}: no structures")
            if self.sfs is not None:
                check_table(frames, self.sfs.elements, source)
            return frames
        return self.descriptor_cache().table(frames, source, progress=getattr(self, "progress", False))
