"""A bug inside a command is one line on stderr that names the log file, whose traceback is there."""

from __future__ import annotations

import warnings

from studio import cli


def test_an_internal_error_is_one_line_and_its_traceback_is_logged(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEPLOY_STUDIO_CACHE", str(tmp_path))

    def broken_command(args):
        return {}["a key nobody set"]

    monkeypatch.setitem(cli.COMMANDS, "plugins", broken_command)
    with warnings.catch_warnings():  # main() silences warnings process-wide; keep that out of other tests
        assert cli.main(["plugins"]) == 1
    err = capsys.readouterr().err.strip()
    log = tmp_path / "logs" / "studio.log"
    assert err.count("\n") == 0 and err.startswith("deploy-studio: internal error: KeyError")
    assert f"the traceback is in {log}" in err
    assert "broken_command" in log.read_text() and "deploy-studio plugins failed" in log.read_text()
