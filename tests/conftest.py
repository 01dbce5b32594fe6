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
