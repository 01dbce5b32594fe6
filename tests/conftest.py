"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repo; tests using it skip when it is absent."""
    if not (SHARED / "reference").is_dir():
        pytest.skip("../shared/reference not present (only developers and CI have it)")
    return SHARED


@pytest.fixture(scope="session")
def n2p2_ref(shared_dir: Path) -> Path:
    """The n2p2 reference calculation on random La/Zr/O structures."""
    d = shared_dir / "reference" / "n2p2" / "la-zr-o-random"
    if not d.is_dir():
        pytest.skip(f"{d} not present")
    return d


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tests use small tensors: one intra-op thread is faster than two on a shared
    2-core machine (and keeps timings of parallel jobs sane)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def chgnet_calc():
    """The CHGNet teacher (CPU), loaded once per session; skips when chgnet is not installed."""
    teacher = pytest.importorskip("mdmlkit.systems.teacher")
    try:
        return teacher.chgnet_calculator(device="cpu")
    except teacher.TeacherUnavailableError:
        pytest.skip("CHGNet not installed (pip install mdmlkit[teacher])")
