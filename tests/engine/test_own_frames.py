"""The model's own frames (``--frames``): a split that shares no frame, used for calibration and judging,
and fidelity figures that carry their evidence, a bootstrap interval and the CPU they were measured on."""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from studio.data import FrameSet, read_spread
from studio.errors import BadInputError
from studio.evaluate.evidence import MIN_TARGETS
from studio.evaluate.fidelity import classification_fidelity, detection_fidelity
from studio.media import bundled_image, bundled_video
from studio.runtime.results import Classification, Detections
from studio.sources import take_frames
from studio.tasks import TaskContext
from tests.engine.cli_helpers import run_cli, run_json


def _digest(frame: np.ndarray) -> str:
    return hashlib.sha256(frame.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory) -> Path:
    """30 street frames (every 8th of bikes.mp4) and the two bundled photos, as a user's image folder."""
    folder = tmp_path_factory.mktemp("own_frames")
    for index, frame in enumerate(take_frames(bundled_video("bikes.mp4"), 240)[::8]):
        cv2.imwrite(str(folder / f"street_{index:03d}.jpg"), frame)
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(bundled_image(name), folder / name)
    return folder


def test_a_folder_splits_by_whole_files_deterministically_and_adding_a_file_moves_no_other(frames_folder, tmp_path):
    first, again = FrameSet.open(frames_folder), FrameSet.open(frames_folder)
    judging = {span.path.name for span in first.judging}
    calibration = {span.path.name for span in first.calibration}
    assert judging and calibration and not judging & calibration
    assert len(judging | calibration) == 32
    assert judging == {span.path.name for span in again.judging}
    copy = tmp_path / "copy"
    shutil.copytree(frames_folder, copy)
    cv2.imwrite(str(copy / "new_frame.jpg"), np.zeros((64, 64, 3), np.uint8))
    grown = FrameSet.open(copy)
    assert judging <= {span.path.name for span in grown.judging}
    assert calibration <= {span.path.name for span in grown.calibration}
    description = first.describe()
    assert description["judging"]["frames"] + description["calibration"]["frames"] == 32
    assert len(description["fingerprint"]) == 16 and description["fingerprint"] != FrameSet.open(copy).describe()[
        "fingerprint"]


def test_a_lone_video_splits_into_contiguous_segments_that_never_touch(tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copy(bundled_video("bikes.mp4"), video)
    frames = FrameSet.open(video)
    judged = {i for s in frames.judging for i in range(s.start, s.stop)}
    calibrated = {i for s in frames.calibration for i in range(s.start, s.stop)}
    assert judged and calibrated and not judged & calibrated
    # A guard gap: no judging frame is the neighbour of a calibration frame.
    assert min(abs(a - b) for a in judged for b in calibrated) > 5
    assert all(s.stop - s.start > 10 for s in frames.judging + frames.calibration)  # contiguous runs, not single frames
    spread = read_spread(frames.judging, 12)
    assert len(spread) == 12  # from both judging segments, decoded lazily
    early, late = frames.judging[0], frames.judging[-1]
    first_frame = take_frames(video, early.start + 1)[-1]
    assert _digest(spread[0]) == _digest(first_frame)
    assert late.start > 150  # the second judging segment lies well into the video: spread over its length


def test_calibration_and_judging_never_share_a_frame(frames_folder):
    from studio.calibration import calibration_frames
    from studio.evaluate.frames import judging_frames

    ctx = TaskContext(frames=FrameSet.open(frames_folder))
    calibrating, info = calibration_frames(None, 64, ctx)
    judging, note = judging_frames(64, ctx)
    assert {_digest(f) for f in calibrating}.isdisjoint({_digest(f) for f in judging})
    assert len(calibrating) + len(judging) == 32
    assert "calibration side" in info["source"] and "judging side" in note and frames_folder.name in note
    # Naming the same folder as a step's own calibration source still gives only its calibration side.
    named, _ = calibration_frames(frames_folder, 64, ctx)
    assert {_digest(f) for f in named} == {_digest(f) for f in calibrating}


def test_a_search_chooses_on_frames_held_out_of_calibration_never_on_the_judging_side(tmp_path):
    """What an INT8 search keeps float is chosen on calibration-side frames that calibrated nothing; the
    judging side is left to judge the result (else its figure is judged on the frames it was tuned to)."""
    from studio.calibration import calibration_and_choosing_frames
    from studio.evaluate.frames import judging_frames

    video = tmp_path / "clip.mp4"
    shutil.copy(bundled_video("bikes.mp4"), video)
    ctx = TaskContext(frames=FrameSet.open(video))
    calibrating, info, choosing, note = calibration_and_choosing_frames(None, 16, 6, ctx)
    judging = {_digest(f) for f in judging_frames(40, ctx)[0]}
    assert (len(calibrating), len(choosing)) == (16, 6) == (info["frames"], info["choosing_frames"])
    calibrated, chosen = {_digest(f) for f in calibrating}, {_digest(f) for f in choosing}
    assert not chosen & calibrated and not chosen & judging and not calibrated & judging
    assert "held out of calibration" in note and "calibration side" in note
    # A search's trials choose on the same held-out frames (``judged_fidelity(side="choosing")``).
    from studio.evaluate.frames import choosing_frames

    assert [_digest(f) for f in choosing_frames(6, ctx)[0]] == [_digest(f) for f in choosing]
    # Held out as whole contiguous runs, not every fourth frame: a choosing frame's neighbours calibrate nothing.
    side = {_digest(f): i for i, f in enumerate(read_spread(ctx.frames.calibration, 10_000))}  # every frame
    held, used = sorted(side[d] for d in chosen), sorted(side[d] for d in calibrated)
    runs = 1 + sum(any(a < c < b for c in used) for a, b in itertools.pairwise(held))
    assert runs == 2, (held, used)


def test_a_search_trial_calibrates_and_trains_apart_from_the_runs_it_is_chosen_on(tmp_path):
    """In a search, every step of a trial (static INT8 and QAT calibration, recovery training, labels) reads the
    calibration side with the search's choosing runs taken out, so a trial is never chosen on frames it was
    calibrated or trained on; mixed INT8 inside the trial chooses on the same runs. The judging side is as it
    was."""
    from studio.calibration import calibration_and_choosing_frames, calibration_frames
    from studio.evaluate.frames import choosing_frames, judging_frames

    video = tmp_path / "clip.mp4"
    shutil.copy(bundled_video("bikes.mp4"), video)
    plain = FrameSet.open(video)
    view = plain.for_search()
    ctx = TaskContext(frames=view)
    every = 10_000
    calibrating = {_digest(f) for f in calibration_frames(None, every, ctx)[0]}
    chosen = {_digest(f) for f in choosing_frames(every, ctx)[0]}
    judging = {_digest(f) for f in judging_frames(every, ctx)[0]}
    assert chosen and calibrating and not chosen & calibrating and not (chosen | calibrating) & judging
    # the same frames as the plain split: the calibration side, cut in two; the judging side untouched
    assert chosen | calibrating == {_digest(f) for f in calibration_frames(None, every, TaskContext(frames=plain))[0]}
    assert judging == {_digest(f) for f in judging_frames(every, TaskContext(frames=plain))[0]}
    assert chosen == {_digest(f) for f in choosing_frames(every, TaskContext(frames=plain))[0]}
    # a mixed INT8 step inside the trial chooses on the search's runs and calibrates on the rest
    inner_calibrating, _, inner_choosing, _ = calibration_and_choosing_frames(None, every, every, ctx)
    assert {_digest(f) for f in inner_choosing} == chosen
    assert {_digest(f) for f in inner_calibrating} == calibrating
    assert view.sides()["held_for_search"]["frames"] == len(chosen) and view.for_search() is view
    # a recovery trained on the view never resumes from a plain run's checkpoint, nor the other way round
    assert plain.training_fingerprint == plain.fingerprint != view.training_fingerprint
    assert "less the runs the search chooses on" in calibration_frames(None, 4, ctx)[1]["source"]


@pytest.mark.slow
def test_a_search_trial_with_the_models_frames_uses_the_search_view(tmp_path):
    """The trial a search worker runs (in-process here, as a Ray worker calls it) calibrates on the view."""
    from studio.recipe import Recipe, Step
    from studio.search.payload import pack
    from studio.search.spec import parse_spec
    from studio.search.trial import run_trial

    video = tmp_path / "clip.mp4"
    shutil.copy(bundled_video("bikes.mp4"), video)
    spec = parse_spec({"target": {"fidelity": 0.1}, "objective": {"minimize": ["latency"], "runs": 3},
                       "budget": {"trials": 1}, "judge": {"frames": 3, "quick_frames": 2},
                       "stages": [{"plugins": ["quantize.static_int8"]}]})
    packed_model, model_blob = pack("zoo:yolov3-tiny-coco")
    packed_data, data_blob = pack(str(video))
    recipe = Recipe((Step("quantize.static_int8", {"samples": 8}, 1),)).as_dict()
    result = run_trial({"number": 0, "recipe": recipe, "spec": spec.as_dict(), "model": vars(packed_model),
                        "data": vars(packed_data), "trust": False}, model_blob, data_blob)
    assert result["state"] == "complete", result.get("error")
    calibration = result["steps"][0]["details"][0]["calibration"]
    assert "less the runs the search chooses on" in calibration["source"], calibration
    assert "held out of calibration" in result["choosing_fidelity"]["frame_set"]


def _detections(boxes: np.ndarray, scores: np.ndarray) -> Detections:
    return Detections(boxes, scores, np.zeros(len(boxes), int), ("thing",))


def _pairs(frames: int, per_frame: int, seed: int = 0) -> tuple[list[Detections], list[Detections]]:
    rng = np.random.default_rng(seed)
    base, variant = [], []
    for _ in range(frames):
        corner = rng.uniform(0, 500, (per_frame, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(30, 90, (per_frame, 2))], 1)
        base.append(_detections(boxes, np.full(per_frame, 0.9)))
        variant.append(_detections(boxes + rng.normal(0, 9, boxes.shape), rng.uniform(0.05, 1, per_frame)))
    return base, variant


def test_fidelity_on_few_targets_is_flagged_and_its_interval_brackets_it():
    thin = detection_fidelity(*_pairs(frames=6, per_frame=2))
    assert thin["evidence"]["count"] == 12 < MIN_TARGETS and thin["evidence"]["thin"]
    assert "thin evidence" in thin["evidence"]["warning"] and "--frames" in thin["evidence"]["warning"]
    assert thin["interval"]["low"] <= thin["value"] <= thin["interval"]["high"]
    enough = detection_fidelity(*_pairs(frames=60, per_frame=2))
    assert not enough["evidence"]["thin"] and "warning" not in enough["evidence"]
    # Ten times the frames: a narrower interval (the same generator, so the same kind of disagreement).
    width = lambda r: r["interval"]["high"] - r["interval"]["low"]  # noqa: E731
    assert width(enough) < width(thin)


def test_classifier_fidelity_counts_frames_as_its_evidence():
    labels = ("a", "b", "c")
    base = [Classification(np.array([i % 3, 0, 1]), np.array([0.9, 0.05, 0.05]), labels) for i in range(20)]
    variant = [Classification(np.array([(i % 3) if i % 4 else 2, 0, 1]), np.array([0.9, 0.05, 0.05]), labels)
               for i in range(20)]
    result = classification_fidelity(base, variant)
    assert result["evidence"] == result["evidence"] | {"frames": 20, "count": 20, "unit": "frames", "thin": True}
    assert result["interval"]["low"] < result["value"] < result["interval"]["high"]


def _int8_recipe(folder: Path, reduce_range: str = "off") -> Path:
    recipe = folder / "int8.toml"
    recipe.write_text('[[steps]]\nplugin = "quantize.static_int8"\nsettings_version = 1\n[steps.settings]\n'
                      f'samples = 8\noutlier_report = false\nreduce_range = "{reduce_range}"\n')
    return recipe


@pytest.mark.slow
def test_optimize_with_own_frames_reports_where_it_judged_and_on_what_cpu(frames_folder, tmp_path):
    report = run_json("optimize", "zoo:yolov3-tiny-coco", "--recipe", _int8_recipe(tmp_path), "-o", tmp_path / "out",
                      "--runs", "3", "--fidelity-frames", "40", "--frames", frames_folder)
    fidelity = report["fidelity"]
    assert frames_folder.name in fidelity["frame_set"] and "judging side" in fidelity["frame_set"]
    assert fidelity["evidence"]["frames"] == report["frames"]["judging"]["frames"]
    assert fidelity["evidence"]["count"] == fidelity["targets"] > 0
    assert fidelity["interval"]["low"] <= fidelity["value"] <= fidelity["interval"]["high"]
    assert report["frames"]["source"] == str(frames_folder.resolve())
    details = report["steps"][0]["details"][0]
    calibration = details["calibration"]
    assert "calibration side" in calibration["source"] and frames_folder.name in calibration["source"]
    assert calibration["frames"] == min(8, report["frames"]["calibration"]["frames"])
    machine = report["method"]["machine"]
    assert machine["features"] and machine["int8_path"] and "judging side" in report["method"]["latency"]
    assert details["reduce_range"]["used"] is False
    if fidelity["evidence"]["thin"]:
        assert any("thin evidence" in w for w in report["warnings"])


def _cli(capfd, *args) -> tuple[int, str, str]:
    """The command line in this process (an interpreter start per call would triple the test's time)."""
    from studio.cli import main

    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


@pytest.mark.slow
def test_evaluate_export_and_bench_take_the_same_frames(frames_folder, tmp_path, capfd):
    import json

    recipe = _int8_recipe(tmp_path)
    code, text, err = _cli(capfd, "evaluate", "zoo:yolov3-tiny-coco", "--recipe", recipe, "--frames", frames_folder)
    assert code == 0, err
    assert "judged on:" in text and frames_folder.name in text and "measured on:" in text
    assert re.search(r"fidelity map50 [0-9.]+ \[[0-9.]+–[0-9.]+\] on [0-9]+ baseline boxes", text), text
    code, out, err = _cli(capfd, "export", "zoo:yolov3-tiny-coco", "--to", "onnx", "-o", tmp_path / "exports",
                          "--frames", frames_folder, "--json")
    assert code == 0, err
    export = json.loads(out)
    parity = export["exports"][0]["parity"]
    assert frames_folder.name in parity["frame_set"] and parity["agreement"]["evidence"]["frames"] == parity["frames"]
    assert export["machine"]["int8_path"] and export["frames"]["fingerprint"]
    code, out, err = _cli(capfd, "bench", "zoo:yolov3-tiny-coco", "--runs", "3", "--warmup", "1",
                          "--frames", frames_folder, "--json")
    assert code == 0, err
    bench = json.loads(out)
    assert frames_folder.name in bench["method"]["frames"] and bench["method"]["machine"]["features"]


def test_evaluate_without_labels_or_a_recipe_says_what_to_give():
    done = run_cli("evaluate", "zoo:yolov3-tiny-coco")
    assert done.returncode == 2 and "--recipe" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_frames_that_cannot_be_split_are_refused_in_one_line(tmp_path):
    cv2.imwrite(str(tmp_path / "only.jpg"), np.zeros((32, 32, 3), np.uint8))
    done = run_cli("bench", "zoo:yolov3-tiny-coco", "--runs", "2", "--frames", tmp_path)
    assert done.returncode == 2 and "too few frames" in done.stderr and str(tmp_path) in done.stderr


@pytest.mark.slow
def test_reduce_range_on_stores_7_bit_weights(darknet_handle, tmp_path):
    import onnx
    from onnx import numpy_helper

    from plugins.quantize.static_int8 import StaticInt8
    from studio.plugin_api import settings_from_dict

    plugin = StaticInt8()
    ctx = TaskContext(workdir=tmp_path)
    extremes = {}
    for choice in ("on", "off"):
        settings = settings_from_dict(plugin, {"samples": 8, "outlier_report": False, "reduce_range": choice}, 1)
        variant = plugin.apply(darknet_handle, settings, ctx)
        graph = onnx.load(str(variant.onnx_path)).graph
        weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8
                   and len(t.dims) == 4]
        extremes[choice] = max(int(np.abs(w.astype(int)).max()) for w in weights)
        assert ctx.reports[-1]["reduce_range"]["used"] is (choice == "on")
    assert extremes["on"] <= 64 < extremes["off"]  # 7-bit: [-64, 63]; 8-bit uses the full [-127, 127]


def test_an_ultralytics_data_yaml_gives_the_images_of_its_splits(frames_folder, tmp_path):
    dataset = tmp_path / "dataset"
    images = sorted(frames_folder.iterdir())
    for split, names in (("train", images[:20]), ("val", images[20:])):
        (dataset / "images" / split).mkdir(parents=True)
        for name in names:
            shutil.copy(name, dataset / "images" / split / name.name)
    (dataset / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: person}\n")
    frames = FrameSet.open(dataset / "data.yaml")
    described = frames.describe()
    assert described["judging"]["frames"] + described["calibration"]["frames"] == 32
    assert not {s.path for s in frames.judging} & {s.path for s in frames.calibration}
    # The same images as a folder split the same way (names relative to the dataset root).
    as_folder = FrameSet.open(dataset)
    assert {s.path.name for s in as_folder.judging} == {s.path.name for s in frames.judging}
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    with pytest.raises(BadInputError, match=r"data\.yaml"):
        FrameSet.open(tmp_path / "broken.yaml")
