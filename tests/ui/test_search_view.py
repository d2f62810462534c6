"""The Search tab: a real search of zoo:yolo11n-pose started from the window, drawn as its trials finish, stopped
and resumed, and a trial turned into a variant.

Real components throughout: the window, the `deploy-studio search` CLI as its child process, Ray, Optuna's SQLite
study. The space is tiny (input size × FP16, each optional) and the judgement small (2 frames judged, 3 timed)
so that a trial takes seconds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from studio.paths import cache_dir
from studio.recipe import load_recipe, resolved_recipe
from studio.registry import default_registry
from studio.search.driver import read_rows
from tests.ui.window_helpers import LOAD_TIMEOUT_MS, open_and_wait

MODEL = "zoo:yolo11n-pose"
SEARCH_TIMEOUT_MS = 400_000  # the machine may be shared: a trial waits for the one measurement slot


@pytest.fixture
def panel(qtbot, window):
    open_and_wait(qtbot, window, MODEL)
    panel = window.variant_tabs.search_panel
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.reasons is not None, timeout=LOAD_TIMEOUT_MS)  # the plugins checked the model
    return panel


def small_search(panel, folder: Path, trials: int) -> None:
    panel.set_folder(folder)
    panel.form.target.setValue(0.5)
    panel.form.trials.setValue(trials)
    panel.form.runs.setValue(3)
    panel.form.frames.setValue(2)
    panel.form.workers.setValue(1)
    for plugin_id, box in panel.form.stage_boxes.items():
        box.setChecked(plugin_id in ("input.size", "quantize.fp16"))


def finished_trials(folder: Path) -> set[int]:
    return {int(p.parent.name) for p in (folder / "trials").glob("*/result.json")} if (folder / "trials").exists() \
        else set()


def drawn_numbers(panel) -> set[int]:
    return {r["number"] for r in (panel.summary or {}).get("trials", [])}


def descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def study_states(folder: Path) -> list[str]:
    with sqlite3.connect(folder / "study.db") as db:
        return [state for (state,) in db.execute("SELECT state FROM trials")]


def test_a_plugin_the_model_refuses_is_disabled_and_a_failed_start_says_why(qtbot, tmp_path):
    from studio.session import Session
    from ui.search_panel import SearchPanel

    panel = SearchPanel(default_registry())
    qtbot.addWidget(panel)
    panel.show()  # the plugins are checked when the tab is looked at
    panel.set_session(Session.open("zoo:yolov3-tiny-coco"))  # a Darknet graph of one input size, 416×416
    qtbot.waitUntil(lambda: panel.reasons is not None, timeout=LOAD_TIMEOUT_MS)
    size = panel.form.stage_boxes["input.size"]
    assert not size.isEnabled() and not size.isChecked()
    note = panel.form.stage_notes["input.size"].text()
    assert "cannot run on this model: its graph takes one input size (416×416)" in note
    assert panel.form.stage_boxes["quantize.fp16"].isEnabled()
    assert [stage.plugins for stage in panel.form.spec().stages] == [("quantize.fp16",)]

    stray = tmp_path / "taken"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    panel.set_folder(stray)
    assert panel.start() is None and "holds other files" in panel.status.text()
    assert sorted(p.name for p in stray.iterdir()) == ["notes.txt"]  # nothing written into it

    panel.set_folder(tmp_path / "new")
    panel.form.cluster.setText("127.0.0.1:1")  # nothing listens there: the child refuses before it writes anything
    assert panel.start() is not None
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=120_000)
    assert panel.status.text().startswith("Search failed:") and "127.0.0.1:1" in panel.status.text()
    assert panel.start_button.text() == "Start search" and panel.form.trials.isEnabled()  # the form is free again


def test_a_search_from_the_tab_draws_its_trials_and_a_trial_becomes_a_variant(qtbot, window, panel, tmp_path):
    # every searchable plugin is offered; yolo11n-pose's graph has dynamic height and width, so all apply
    assert {"input.size", "quantize.fp16", "prune.channels", "quantize.static_int8"} <= set(panel.form.stage_boxes)
    assert all(box.isEnabled() for box in panel.form.stage_boxes.values()), panel.reasons
    # results go to a new folder in the studio's cache, shown in the tab
    assert panel.folder.parent.parent == cache_dir() / "search" and not panel.folder.exists()
    assert panel.folder_edit.text() == str(panel.folder)

    folder = tmp_path / "search"
    small_search(panel, folder, trials=2)
    job = panel.start()
    assert job is not None
    assert panel.start() is None and "running" in panel.status.text()  # one search at a time
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=SEARCH_TIMEOUT_MS)
    assert job.error is None, job.error
    qtbot.waitUntil(lambda: panel.summary is not None and len(panel.summary["trials"]) == 2, timeout=10_000)

    rows = read_rows(folder)["trials"]  # what the study holds, read apart from the view
    drawn = {kind: sorted(int(n) for n in panel.plot.scatters[kind].data["data"]) for kind in panel.plot.scatters}
    assert drawn["feasible"] == sorted(r["number"] for r in rows if r["state"] == "complete" and r["feasible"])
    assert drawn["below"] == sorted(r["number"] for r in rows if r["state"] == "complete" and not r["feasible"])
    assert drawn["pruned"] == sorted(r["number"] for r in rows if r["state"] == "pruned")
    assert drawn["baseline"] == [-1]  # the model itself, at fidelity 1
    assert panel.table.rowCount() == len(rows) + 1
    assert panel.plot.target_line.value() == pytest.approx(0.5)
    assert "ort, 1 thread(s), 3 timed frames" in panel.plot.getAxis("bottom").labelText
    assert "2 judging frames" in panel.plot.getAxis("left").labelText
    assert "Done" in panel.status.text()

    assert len(panel.plot.front_rings.data) == sum(bool(r["on_front"]) for r in rows)

    # a timed trial if there is one, else a pruned one (drawn in the "not timed" column): either becomes a variant
    chosen = sorted((r for r in rows if r["state"] in ("complete", "pruned") and r["recipe"]["steps"]),
                    key=lambda r: r["state"] != "complete")[0]
    panel.select_trial(chosen["number"])
    assert panel.plot.selected_ring.data["x"].tolist() == [panel.plot.where[chosen["number"]][0]]
    assert panel.variant_button.isEnabled()
    before = len(window.session.variants)
    panel.variant_button.click()
    qtbot.waitUntil(lambda: len(window.session.variants) == before + 1 and not window.jobs.busy,
                    timeout=LOAD_TIMEOUT_MS)
    variant = window.session.variants[-1]
    expected = resolved_recipe(load_recipe(folder / "trials" / f"{chosen['number']:04d}" / "recipe.toml"),
                               default_registry())
    assert variant.recipe == expected
    assert variant.report is not None and variant.report["fidelity"]["value"] is not None
    assert variant.key in [r["key"] for r in window.variants_panel.rows]


def test_stop_leaves_the_folder_resumable_and_closing_the_window_ends_the_search(qtbot, window, panel, tmp_path):
    folder = tmp_path / "search"
    small_search(panel, folder, trials=40)
    panel.start()
    qtbot.waitUntil(lambda: len(finished_trials(folder)) >= 1, timeout=SEARCH_TIMEOUT_MS)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=120_000)
    assert panel.child.interrupted_at is not None and panel.child.process.returncode == 130  # SIGINT, not a kill
    assert "Stopped" in panel.status.text()
    assert "RUNNING" not in study_states(folder)  # the trials in flight were closed as cancelled
    kept = {r["number"] for r in read_rows(folder)["trials"]}

    panel.set_folder(folder)  # chosen again (or left as it is): the form shows its spec, Start resumes
    assert panel.start_button.text() == "Resume search" and not panel.form.trials.isEnabled()
    assert panel.start() is not None
    qtbot.waitUntil(lambda: len(drawn_numbers(panel)) > len(kept), timeout=SEARCH_TIMEOUT_MS)  # as the tab shows
    panel.stop()
    qtbot.waitUntil(lambda: not panel.jobs.busy, timeout=120_000)
    assert panel.child.process.returncode == 130, panel.child.lines
    summary = read_rows(folder)
    assert kept < {r["number"] for r in summary["trials"]}  # the first run's trials kept, new ones added
    assert "RUNNING" not in study_states(folder)

    # closing the window while a search runs ends it and everything it started (Ray's processes included)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.child.process is not None and len(descendants(panel.child.process.pid)) >= 2,
                    timeout=SEARCH_TIMEOUT_MS)
    started = descendants(panel.child.process.pid)
    window.close()
    qtbot.waitUntil(lambda: panel.child.process.poll() is not None and not any(p.is_running() for p in started),
                    timeout=20_000)
    qtbot.wait(300)  # the search job's end reaches the GUI thread: a closed window does not resume its preview
    assert window.preview is None
