"""Teacher calculators that label training data (energies, forces, stresses).

No DFT data can be produced or downloaded in every environment, so mdmlkit's
shipped La2Zr2O7 data set is labelled by a DFT-trained universal potential,
CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031 (2023); pretrained on the
Materials Project trajectory set, PBE/PBE+U level).  Its weights ship inside the
``chgnet`` wheel, so nothing is downloaded at run time.  Install with
``pip install mdmlkit[teacher]``.

Any ASE calculator can be the teacher instead (VASP, Quantum ESPRESSO, GPAW,
...): the data tools take a *calculator factory* (a zero-argument callable
returning a fresh calculator), and :func:`resolve_teacher` turns a command-line
spec ``"chgnet"``, ``"toy"`` or ``"package.module:factory"`` into one.

Units (ASE): energy eV, forces eV/A, stress eV/A^3 (ASE sign convention,
``sigma = (1/V) dE/d(eps)``, positive = tensile).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from collections.abc import Callable
from typing import Any

from mdmlkit.errors import InputError, TeacherUnavailableError

__all__ = ["TeacherUnavailableError", "chgnet_calculator", "toy_calculator", "resolve_teacher",
           "teacher_info"]

CalculatorFactory = Callable[[], Any]


def chgnet_calculator(device: str | None = None, model_name: str = "0.3.0",
                      threads: int | None = None):
    """CHGNet's ASE calculator with the pretrained weights bundled in the wheel.

    Parameters
    ----------
    device : str or None
        Torch device ("cpu", "cuda", ...); ``None`` picks CUDA when available.
    model_name : str
        Pretrained CHGNet version ("0.3.0" default).
    threads : int or None
        If given, ``torch.set_num_threads(threads)`` (1 is fastest for the small
        cells of a data set on a shared machine).

    Returns
    -------
    chgnet.model.dynamics.CHGNetCalculator
        Energies in eV, forces eV/A, stress eV/A^3.

    Raises
    ------
    TeacherUnavailableError
        (an ImportError) when ``chgnet`` is not installed.
    """
    try:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as exc:
        raise TeacherUnavailableError(
            "the CHGNet teacher needs the optional 'chgnet' package: "
            "pip install mdmlkit[teacher]") from exc
    from mdmlkit.utils import resolve_device

    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    dev = str(resolve_device(device))
    with contextlib.redirect_stdout(io.StringIO()):   # CHGNet prints device banners
        model = CHGNet.load(model_name=model_name, use_device=dev, verbose=False)
        calc = CHGNetCalculator(model=model, use_device=dev, on_isolated_atoms="ignore")
    # CHGNet 0.4 calls float() on a tensor that requires grad inside every calculation, and
    # torch warns each time: silence that one message (only) at its source
    _calculate = calc.calculate

    def calculate(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning,
                                    message="Converting a tensor with requires_grad=True to a scalar")
            return _calculate(*args, **kwargs)

    calc.calculate = calculate
    return calc


def toy_calculator():
    """Fast analytic stand-in teacher for tests and smoke runs (not physical).

    A smooth, element-blind Lennard-Jones potential from ASE (sigma = 2.2 A,
    epsilon = 0.25 eV, smoothly cut off between 4.5 and 6 A; the pyrochlore
    lattice relaxes to a ~ 10.9 A with Einstein constants ~ 5-20 eV/A^2):
    consistent energies, forces and stresses for any elements.  ASE's EMT
    does not cover La or Zr, hence this replacement for an "EMT" test teacher.
    """
    from ase.calculators.lj import LennardJones

    return LennardJones(sigma=2.2, epsilon=0.25, rc=6.0, ro=4.5, smooth=True)


def resolve_teacher(spec: str | CalculatorFactory, device: str | None = None,
                    threads: int | None = None) -> CalculatorFactory:
    """Turn a teacher spec into a zero-argument calculator factory.

    ``spec`` is a callable (returned unchanged), ``"chgnet"``, ``"toy"`` (alias
    ``"emt-test"``) or ``"package.module:factory"`` naming an importable
    zero-argument function that returns an ASE calculator (e.g. a function
    that sets up VASP or Quantum ESPRESSO).
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec:
        raise InputError(f"teacher spec must be a string or a callable, got {spec!r}")
    name = spec.strip()
    if name.lower() == "chgnet":
        return _ChgnetFactory(device, threads)
    if name.lower() in ("toy", "emt-test", "lj-test"):
        return toy_calculator
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise InputError(f"teacher {spec!r}: cannot import module {mod_name!r}: {exc}") from exc
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise InputError(f"teacher {spec!r}: {mod_name} has no callable {attr!r}")
        return factory
    raise InputError(f"unknown teacher {spec!r}: use 'chgnet', 'toy' or 'package.module:factory'")


class _ChgnetFactory:
    """Picklable factory for :func:`chgnet_calculator` (for worker processes)."""

    def __init__(self, device: str | None, threads: int | None):
        self.device, self.threads = device, threads

    def __call__(self):
        return chgnet_calculator(device=self.device, threads=self.threads)

    def __repr__(self) -> str:
        return f"chgnet_calculator(device={self.device!r}, threads={self.threads!r})"


def teacher_info(calculator: Any) -> dict[str, str]:
    """Provenance of a calculator: ``teacher``, ``teacher_version``, ``teacher_model``.

    For CHGNet: ``{"teacher": "CHGNet", "teacher_version": "chgnet 0.4.2",
    "teacher_model": "0.3.0"}`` (package and pretrained-model versions).
    For other calculators the class name and the version of its top-level
    package (``"unknown"`` when not found); ``teacher_model`` from a ``version``
    attribute if present.
    """
    cls = type(calculator)
    top = cls.__module__.split(".")[0]
    pkg_version = "unknown"
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            pkg_version = version(top)
        except PackageNotFoundError:
            pkg_version = str(getattr(importlib.import_module(top), "__version__", "unknown"))
    except Exception:   # pragma: no cover - metadata edge cases
        pass
    if cls.__name__ == "CHGNetCalculator":
        model = getattr(calculator, "version", None) or getattr(
            getattr(calculator, "model", None), "version", None)
        return {"teacher": "CHGNet", "teacher_version": f"{top} {pkg_version}",
                "teacher_model": str(model or "unknown")}
    model = getattr(calculator, "version", None)
    name = cls.__name__
    if top == "ase" and name == "LennardJones":
        name = "toy-LennardJones"
    return {"teacher": name, "teacher_version": f"{top} {pkg_version}",
            "teacher_model": str(model) if isinstance(model, (str, int, float)) else "n/a"}
