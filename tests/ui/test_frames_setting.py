"""The window's per-model 'Frames for judging and calibration': chosen, remembered, used and shown."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.ui.window_helpers import LOAD_TIMEOUT_MS, open_and_wait

MODEL = "zoo:efficientnet-lite0"


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """A user's photos: the two bundled photos and eight Big Buck Bunny stills, as JPEG files."""
    from studio.media import bundled_image, bundled_video
    from studio.sources import take_frames

    folder = tmp_path / "my photos"
    folder.mkdir()
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(bundled_image(name), folder / name)
    for index, frame in enumerate(take_frames(bundled_video("bigbuckbunny.mp4"), 128)[::16]):
        cv2.imwrite(str(folder / f"bunny_{index}.jpg"), frame)
    return folder


@pytest.mark.slow
def test_frames_chosen_for_a_model_are_used_shown_beside_fidelity_and_remembered(qtbot, window, settings,
                                                                                photo_folder):
    open_and_wait(qtbot, window, MODEL)
    assert window.session.frames is None and "bundled" in window.frames_setting.label.text()
    assert window.frames_setting.set_frames(photo_folder)
    assert window.session.frames == photo_folder
    assert "judging" in window.frames_setting.label.text() and "no frame shared" in window.frames_setting.label.text()

    box = window.optimize_panel.boxes["quantize.fp16"]
    qtbot.waitUntil(box.run.isEnabled, timeout=60_000)
    box.run.click()
    table = window.variants_panel.table
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=LOAD_TIMEOUT_MS)
    row = window.variants_panel.rows[1]
    assert photo_folder.name in row["judged_on"] and "judging side" in row["judged_on"]
    evidence = table.item(1, 7)
    assert "frames" in evidence.text() and "⚠ thin" in evidence.text()  # a handful of photos: a hint only
    assert photo_folder.name in evidence.toolTip() and "interval" in evidence.toolTip()
    assert "[" in table.item(1, 6).text()  # the fidelity with its interval
    assert photo_folder.name in window.variants_panel.note.text()

    window.close()
    from ui.main_window import MainWindow

    again = MainWindow(settings=settings)  # the next start: the choice is remembered for this model
    qtbot.addWidget(again)
    again.show()
    again.finish_startup()
    try:
        open_and_wait(qtbot, again, MODEL)
        assert again.session.frames == photo_folder
        assert str(photo_folder) in again.frames_setting.label.text()
    finally:
        again.close()


def test_frames_that_cannot_be_split_are_refused_in_the_panel(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, MODEL)
    lonely = tmp_path / "one photo"
    lonely.mkdir()
    cv2.imwrite(str(lonely / "only.jpg"), np.zeros((32, 32, 3), np.uint8))
    assert not window.frames_setting.set_frames(lonely)
    assert window.session.frames is None and "too few frames" in window.frames_setting.label.text()
    shutil.rmtree(lonely)
