"""Shared helpers: run-folder settings guard."""
import json

import pytest

from mdmlkit.errors import CheckpointMismatchError
from mdmlkit.utils import check_run_settings


def test_run_settings_written_once_then_compared(tmp_path):
    check_run_settings(tmp_path, {"steps": 10, "path": tmp_path})        # non-JSON values as str
    assert json.loads((tmp_path / "settings.json").read_text()) == {"steps": 10, "path": str(tmp_path)}
    check_run_settings(tmp_path, {"steps": 10, "path": tmp_path})        # same settings: resume
    with pytest.raises(CheckpointMismatchError, match=str(tmp_path)):
        check_run_settings(tmp_path, {"steps": 20, "path": tmp_path})
