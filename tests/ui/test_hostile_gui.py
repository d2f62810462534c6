"""The hostile corpus dropped on the real window: each file gives a message naming it (or, for code in a
pickle, the trust question), nothing runs, and the window stays usable. Bad and dying video sources
stop the preview with the reason, and Play starts it again."""

from __future__ import annotations

import cv2
import pytest

from studio.sources import take_frames
from tests.hostile.corpus import MODEL, VIDEO, build_corpus
from tests.ui.window_helpers import LOAD_TIMEOUT_MS, open_and_wait, visible_boxes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-gui")
    return build_corpus(root / "corpus", root / "canary"), root / "canary"


def test_every_hostile_model_file_gives_a_message_naming_it(qtbot, window, corpus):
    cases, canary = corpus
    models = [case for case in cases if case.kind == MODEL]
    assert len(models) >= 40
    silent = []
    for case in models:
        assert window.open_model(str(case.path)), case.name
        qtbot.waitUntil(lambda: not window.job.running, timeout=60_000)
        qtbot.waitUntil(lambda: bool(visible_boxes(window, "job_error") or visible_boxes(window, "trust_question")),
                        timeout=10_000)
        boxes = visible_boxes(window, "job_error") + visible_boxes(window, "trust_question")
        if not any(case.path.name in box.text() for box in boxes):
            silent.append(f"{case.name}: {[box.text()[:200] for box in boxes]}")
        for box in boxes:
            box.reject()  # "No" for the trust question: nothing is trusted, nothing runs
            box.close()
    assert not silent, "\n".join(silent)
    assert not canary.exists(), "a payload ran"
    assert window.session is None and window.isVisible()


def test_bad_video_sources_stop_the_preview_with_the_reason(qtbot, window, corpus):
    cases, _ = corpus
    open_and_wait(qtbot, window, "zoo:yolov8n-random")
    for case in (c for c in cases if c.kind == VIDEO):
        window.set_source(str(case.path))
        qtbot.waitUntil(lambda: "Preview stopped" in window.status_text.text(), timeout=60_000)
        assert case.path.name in window.status_text.text(), (case.name, window.status_text.text())
        window.show_status("")


def test_a_video_that_dies_mid_stream_stops_with_a_message_and_play_restarts_it(qtbot, window, tmp_path):
    frames = take_frames(_bikes(), 60)
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 25, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    open_and_wait(qtbot, window, "zoo:yolov8n-random")
    window.set_source(str(truncated))
    qtbot.waitUntil(lambda: "Preview stopped" in window.status_text.text(), timeout=LOAD_TIMEOUT_MS)
    assert "truncated" in window.status_text.text() and window.preview is None
    assert window.play_action.text() == "Play"
    window.show_status("")
    window.toggle_preview()  # Play: the same source again, from the start
    qtbot.waitUntil(lambda: window.preview is not None and window.preview.processed >= 3, timeout=LOAD_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "Preview stopped" in window.status_text.text(), timeout=LOAD_TIMEOUT_MS)


def _bikes():
    from studio.media import bundled_video

    return bundled_video()
