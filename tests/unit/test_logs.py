"""The studio's log file and the one-line error text."""

from __future__ import annotations

import pytest

from studio.errors import first_line
from studio.logs import log_path, log_unexpected


def _raise_deep():
    raise RuntimeError("converter exploded\nnode 17: Conv\n" + "detail " * 50)


def test_an_unexpected_error_leaves_its_traceback_in_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_STUDIO_CACHE", str(tmp_path))
    try:
        _raise_deep()
    except RuntimeError as exc:
        written = log_unexpected("export of demo failed", exc)
    assert written == log_path() == tmp_path / "logs" / "studio.log"
    text = written.read_text()
    assert "export of demo failed" in text and "_raise_deep" in text and "node 17: Conv" in text


def test_the_log_follows_the_cache_folder(tmp_path, monkeypatch):
    for name in ("a", "b"):
        monkeypatch.setenv("DEPLOY_STUDIO_CACHE", str(tmp_path / name))
        log_unexpected(f"in {name}", ValueError(name))
    assert "in a" not in (tmp_path / "b" / "logs" / "studio.log").read_text()
    assert "in b" not in (tmp_path / "a" / "logs" / "studio.log").read_text()


@pytest.mark.parametrize(("message", "limit", "expected"), [
    ("first\nsecond", 200, "first"),
    ("", 200, "ValueError"),
    ("  \n", 200, "ValueError"),
    ("x" * 30, 10, "x" * 9 + "…"),
])
def test_first_line(message, limit, expected):
    assert first_line(ValueError(message), limit) == expected
