"""Kill the app at any moment and lose nothing: a real app process builds a variant, is killed with
SIGKILL, and the next start restores the model, the variant and the source — and says so."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from studio.workspace import workspace_path
from tests.ui.window_helpers import LOAD_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]


def test_a_killed_session_is_restored_at_the_next_start(qtbot, window, tmp_path):
    from ui.autosave import start

    child = subprocess.Popen([sys.executable, "-m", "tests.ui.crash_app", str(tmp_path / "crashed.ini"),
                              "zoo:efficientnet-lite0", "quantize.fp16"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        lines = iter(child.stdout.readline, "")  # libraries print too: wait for our line
        assert any(line.strip() == "ready" for line in lines), f"the app did not get ready (exit {child.poll()})"
        saved = json.loads(workspace_path().read_text())
        assert saved["pid"] == child.pid and not saved["clean_exit"]
        assert [v["key"] for v in saved["session"]["variants"]] == ["v1"]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    # A variant published in the instant before the kill, not yet listed: found by its folder's time.
    listed = Path(saved["session"]["variants"][0]["folder"])
    unlisted = shutil.copytree(listed, listed.parent / f"{listed.name}-unlisted")
    os.utime(unlisted)  # written just now, like a worker's publish (copytree kept the original's time)
    start(window, None, "zoo:yolov8n-random")  # no model on the command line: restore, not the demo
    qtbot.waitUntil(lambda: window.session is not None and "Restored" in window.status_text.text(),
                    timeout=LOAD_TIMEOUT_MS)
    session = window.session
    assert session.spec == "zoo:efficientnet-lite0" and [v.key for v in session.variants] == ["base", "v1", "v2"]
    assert session.variants[1].recipe.steps[0].plugin == "quantize.fp16" and session.variants[1].report
    assert window.variants_panel.table.rowCount() == 3 and "2 variant" in window.status_text.text()
    qtbot.waitUntil(lambda: window.preview is not None and window.preview.processed >= 2, timeout=LOAD_TIMEOUT_MS)
    # This process now owns the workspace; closing cleanly means the next start opens normally.
    assert json.loads(workspace_path().read_text())["pid"] == os.getpid()
    window.close()
    from studio.workspace import unclean_workspace

    assert unclean_workspace() is None
