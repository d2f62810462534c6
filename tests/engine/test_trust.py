"""Trusting a pickle-based file is remembered by the hash of its bytes, never by its name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from studio.errors import NeedsTrustError
from studio.safe_pickle import safe_torch_load
from studio.trust import forget_trust, is_trusted
from tests.engine.cli_helpers import run_cli


class _Payload:
    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _evil(path: Path, canary: Path) -> Path:
    torch.save({"model": _Payload(canary)}, path)
    return path


def test_trust_given_once_on_the_command_line_is_remembered_by_hash(tmp_path):
    canary = tmp_path / "canary"
    path = _evil(tmp_path / "evil.pt", canary)
    assert not is_trusted(path)
    run_cli("info", path, "--trust")
    assert canary.exists() and is_trusted(path)
    canary.unlink()
    # The next load needs no --trust: the same bytes were vouched for.
    safe_torch_load(path)
    assert canary.exists()
    canary.unlink()
    # A renamed copy is the same bytes: trusted.
    copy = shutil.copy(path, tmp_path / "renamed.pt")
    safe_torch_load(Path(copy))
    assert canary.exists()
    canary.unlink()
    # Different bytes under the trusted name: refused, nothing runs.
    _evil(path, tmp_path / "other-canary")
    with pytest.raises(NeedsTrustError):
        safe_torch_load(path)
    assert not canary.exists() and not (tmp_path / "other-canary").exists()


def test_forgetting_trust_refuses_again(tmp_path):
    canary = tmp_path / "canary"
    path = _evil(tmp_path / "evil.pt", canary)
    safe_torch_load(path, trust=True)
    canary.unlink()
    assert forget_trust(path)
    with pytest.raises(NeedsTrustError):
        safe_torch_load(path)
    assert not canary.exists()


def test_an_unreadable_trust_store_trusts_nothing(tmp_path):
    from studio.trust import config_dir

    canary = tmp_path / "canary"
    path = _evil(tmp_path / "evil.pt", canary)
    safe_torch_load(path, trust=True)
    canary.unlink()
    (config_dir() / "trusted-files.json").write_text("{ not json")
    with pytest.raises(NeedsTrustError):
        safe_torch_load(path)
    assert not canary.exists()
