"""The window's model of work: variants are recipes on the base model, built and measured by optimize."""

from __future__ import annotations

import pytest

from studio.plugin_api import SettingsError
from studio.session import Session
from studio.tasks import TaskContext


@pytest.fixture(scope="module")
def session():
    return Session.open("zoo:efficientnet-lite0")


def test_a_derived_variant_is_measured_against_the_base(session, tmp_path):
    seen = []
    variant = session.derive("base", "quantize.fp16", {}, TaskContext(on_progress=lambda f, t: seen.append(f)))
    rows = {row["key"]: row for row in session.rows()}
    assert variant.key == "v1" and variant.title == "quantize.fp16"
    assert rows["v1"]["size_mb"] < 0.6 * rows["base"]["size_mb"]  # FP16 weights
    assert rows["v1"]["fidelity_metric"] == "top1_agreement" and rows["v1"]["fidelity"] >= 0.9
    assert rows["v1"]["p50_ms"] > 0 and rows["base"]["p50_ms"] > 0  # measured in the same run
    assert (variant.folder / "report.json").is_file() and variant.handle.onnx_path.exists()
    assert seen and max(seen) > 0.9

    path = session.save_recipe("v1", tmp_path / "fp16.toml")
    again = session.load_recipe(path, TaskContext())
    assert again.key == "v2" and again.recipe == variant.recipe
    assert again.row()["size_mb"] == rows["v1"]["size_mb"]


def test_a_bad_setting_fails_before_any_work(session):
    before = len(session.variants)
    with pytest.raises(SettingsError, match="ratio"):
        session.derive("base", "prune.channels", {"ratio": 3.0}, TaskContext())
    assert len(session.variants) == before


def test_a_quantized_variant_previews_as_the_same_kind_of_model(session):
    """The published ONNX of an FP16 classifier still takes images and answers with classes."""
    from studio.media import bundled_video
    from studio.runtime.predictor import make_predictor
    from studio.runtime.results import Classification
    from studio.sources import take_frames

    variant = next((v for v in session.variants if v.key != "base"), None) or session.derive(
        "base", "quantize.fp16", {}, TaskContext())
    assert variant.handle.image_input == session.baseline.image_input and variant.handle.labels
    result = make_predictor(variant.handle, "ort")(take_frames(bundled_video("bikes.mp4"), 1)[0]).result
    assert isinstance(result, Classification)


def test_a_video_cascade_variant_runs_in_the_live_preview():
    """Run-time schemes are variants the preview runs, not only the bench: frames take the cheap paths."""
    import time

    from studio.media import bundled_video
    from studio.preview import Lane, LivePreview

    session = Session.open("zoo:yolov8s-fall")
    variant = session.derive("base", "early_exit.video_cascade", {}, TaskContext())
    assert variant.handle.metadata.get("runtime_mode") == "cascade"
    lane = Lane.create(variant.key, variant.handle, threads=2)
    preview = LivePreview(str(bundled_video("bikes.mp4")), [lane], pace=False).start()
    deadline = time.monotonic() + 120
    while lane.frames < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert preview.stop() and preview.error is None
    paths = lane.predictor.paths
    assert sum(paths.values()) >= 30 and (paths["reuse"] + paths["low"]) > 0  # not every frame at full size
