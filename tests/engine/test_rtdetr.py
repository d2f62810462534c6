"""RT-DETR (issue 20): Ultralytics' RT-DETR configs and checkpoints open as detectors decoded by the "rtdetr" decoder,
and give what Ultralytics' own ``RTDETR(...).predict`` gives on bus.jpg, zidane.jpg and 20 frames of bikes.mp4,
through the studio's torch runtime, its onnxruntime runtime and the Ultralytics ONNX export re-opened by path.

Figures: same instances (class, score within 1e-3), every box IoU >= 0.99; the worst IoU is printed (-s).

Random weights: yolov8-rtdetr.yaml (the smallest RT-DETR config, 9.6 M parameters) built with seed 0 scores every
query the same (its BatchNorms are untrained, and its box head's last layers start at zero, so every box is its
anchor). Its BatchNorm statistics are set from the 22 frames, its score heads' weights doubled with their bias at -6
(scores spread from ~0.05 to ~0.2) and its box heads' last layers drawn small and random (boxes move off their
anchors), then it is saved as a checkpoint: the weights stay random and conf 0.1 keeps tens of instances per frame,
far fewer than the 300 the head outputs (so its top-k never decides which instances exist).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from studio.loaders import load_model
from studio.model import Resize, Task
from studio.runtime.predictor import Predictor, make_backend
from tests.engine.test_task_decoders import _box_iou

CONFIG = "v8/yolov8-rtdetr.yaml"
CONF = 0.1
SCORE_TOLERANCE = 1e-3  # an instance this close to conf may fall either side of it after a runtime's rounding


def _config_path(config: str = CONFIG) -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "cfg" / "models" / config


def _tensor(frames: list[np.ndarray]):
    import torch

    return torch.stack([torch.from_numpy(cv2.resize(f, (640, 640))[:, :, ::-1].transpose(2, 0, 1).copy()).float()
                        / 255 for f in frames])


@pytest.fixture(scope="module")
def frames(bus_path, zidane_path, bikes_frames) -> list[np.ndarray]:
    return [cv2.imread(str(bus_path)), cv2.imread(str(zidane_path)), *bikes_frames]


@pytest.fixture(scope="module")
def checkpoint(frames, tmp_path_factory) -> Path:
    import torch

    module = load_model(_config_path()).torch_module
    for norm in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batch
    module.train()
    with torch.no_grad():
        module(_tensor(frames))
    module.eval()
    head = module.model[-1]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for linear in head.dec_score_head:
            linear.weight.mul_(2.0)
            linear.bias.fill_(-6.0)
        for mlp in head.dec_bbox_head:
            mlp.layers[-1].weight.normal_(0.0, 0.02, generator=generator)
    path = tmp_path_factory.mktemp("rtdetr") / "yolov8-rtdetr-calibrated.pt"
    torch.save({"model": module, "train_args": {"imgsz": 640}}, path)
    return path


@pytest.fixture(scope="module")
def theirs(checkpoint, frames) -> list:
    """Ultralytics' own ``RTDETR(...).predict`` of the checkpoint on every frame, run once for every comparison."""
    from ultralytics import RTDETR

    reference = RTDETR(str(checkpoint))
    return [reference.predict(frame, conf=CONF, verbose=False, device="cpu")[0] for frame in frames]


def _match(ours, theirs, frame: np.ndarray) -> tuple[int, float]:
    """(instances matched, worst box IoU): every Ultralytics instance has one of the studio's with its class and
    score, and the other way round, except within SCORE_TOLERANCE of conf."""
    ref_boxes, ref_scores = theirs.boxes.xyxy.numpy().copy(), theirs.boxes.conf.numpy()
    ref_classes = theirs.boxes.cls.numpy().astype(np.int64)
    height, width = frame.shape[:2]
    ref_boxes[:, [0, 2]] = ref_boxes[:, [0, 2]].clip(0, width)  # the studio clips boxes to the frame
    ref_boxes[:, [1, 3]] = ref_boxes[:, [1, 3]].clip(0, height)
    iou = _box_iou(ref_boxes, ours.boxes)
    same = (ref_classes[:, None] == ours.class_ids[None, :]) & \
        (np.abs(ref_scores[:, None] - ours.scores[None, :]) < SCORE_TOLERANCE)
    taken: set[int] = set()
    worst = 1.0
    for i in range(len(ref_boxes)):
        candidates = [j for j in np.argsort(-iou[i]) if same[i, j] and j not in taken]
        if not candidates:
            assert ref_scores[i] < CONF + SCORE_TOLERANCE, f"Ultralytics' instance {i} ({ref_scores[i]:.4f}) missing"
            continue
        taken.add(candidates[0])
        worst = min(worst, float(iou[i, candidates[0]]))
    for j in set(range(len(ours))) - taken:
        assert ours.scores[j] < CONF + SCORE_TOLERANCE, f"the studio's instance {j} ({ours.scores[j]:.4f}) is extra"
    return len(taken), worst


def test_config_opens_as_an_rtdetr_detector():
    handle = load_model(_config_path())
    assert (handle.task, handle.decoder) == (Task.DETECT, "rtdetr")
    image = handle.required_image_input()
    assert (image.resize, image.size, image.dynamic) == (Resize.STRETCH, (640, 640), False)


def test_random_weight_checkpoint_matches_ultralytics(checkpoint, frames, theirs):
    from studio.runtime.onnx_export import ensure_onnx

    handle = load_model(checkpoint)
    assert (handle.task, handle.decoder, handle.required_image_input().resize) == (Task.DETECT, "rtdetr",
                                                                                    Resize.STRETCH)
    # The studio's ONNX (Ultralytics' exporter, fixed at 640) re-opened by path: recognised from its metadata.
    exported = load_model(ensure_onnx(handle))
    assert (exported.format, exported.decoder) == ("ultralytics-onnx", "rtdetr")
    assert exported.outputs[0].shape == (1, 300, 6)
    exported_image = exported.required_image_input()
    assert (exported_image.resize, exported_image.size, exported_image.dynamic) == (Resize.STRETCH, (640, 640), False)
    runs = {"torch": (handle, "torch"), "ort": (handle, "ort"), "onnx file": (exported, "ort")}
    for name, (model, runtime) in runs.items():
        predictor = Predictor(model, make_backend(model, runtime, threads=2), conf=CONF)
        matched, worst = 0, 1.0
        for frame, result in zip(frames, theirs, strict=True):
            count, iou = _match(predictor(frame).result, result, frame)
            matched, worst = matched + count, min(worst, iou)
        print(f"RT-DETR {checkpoint.name} on {name}, {len(frames)} frames: {matched} instances matched, "
              f"worst box IoU {worst:.4f}")
        assert matched >= 100, "the frames should hold enough instances for the comparison to mean something"
        assert worst >= 0.99


def test_rtdetr_l_opens_by_bundled_name():
    """As the zoo opens configs; Ultralytics' own guess of its task is None (the crash of issue 20). Every RT-DETR
    config predicts in tests/engine/test_config_sweep.py."""
    from studio.loaders.ultralytics_yaml import load_bundled

    handle = load_bundled("rtdetr-l.yaml")
    assert (handle.task, handle.decoder, handle.required_image_input().resize) == (Task.DETECT, "rtdetr",
                                                                                    Resize.STRETCH)


def test_half_precision_checkpoint_runs(tmp_path, bus_path):
    """Ultralytics' checkpoints store the model in half precision, without train_args: it runs at 640, stretched."""
    import torch
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    path = tmp_path / "rtdetr-half.pt"
    torch.save({"model": RTDETRDetectionModel(str(_config_path()), verbose=False).half()}, path)
    handle = load_model(path)
    assert (handle.decoder, handle.required_image_input().size, handle.inputs[0].shape) == (
        "rtdetr", (640, 640), (1, 3, 640, 640))
    predictor = Predictor(handle, make_backend(handle, "torch", threads=2), conf=0.0)
    prediction = predictor(cv2.imread(str(bus_path)))
    assert prediction.input_shape == (1, 3, 640, 640)
    assert 0 < len(prediction.result.boxes) <= 300


EXPORT_FRAMES = 6
RUNTIME = {"onnx": "ort", "openvino": "openvino", "tflite": "litert"}


@pytest.fixture(scope="module")
def exports(checkpoint, tmp_path_factory) -> dict[str, dict]:
    from studio.export import run_export

    report = run_export(str(checkpoint), [*RUNTIME, "coreml"], tmp_path_factory.mktemp("rtdetr-exports"))
    return {item["format"]: item for item in report["exports"]}


@pytest.mark.parametrize("fmt", list(RUNTIME))
def test_export_reopens_as_rtdetr_and_matches_ultralytics(exports, fmt, frames, theirs):
    """Each float export re-opened by path in its own runtime gives Ultralytics' instances (its head normalises the
    boxes in every format: the TFLite route must not scale them as it does a YOLO head's)."""
    item = exports[fmt]
    assert item["parity"]["agreement"]["value"] >= 0.99, item["parity"]
    reopened = load_model(item["path"])
    image = reopened.required_image_input()
    assert (reopened.task, reopened.decoder, image.resize, image.size) == (Task.DETECT, "rtdetr", Resize.STRETCH,
                                                                           (640, 640))
    predictor = Predictor(reopened, make_backend(reopened, RUNTIME[fmt], threads=2), conf=CONF)
    matched, worst = 0, 1.0
    for frame, result in zip(frames[:EXPORT_FRAMES], theirs[:EXPORT_FRAMES], strict=True):
        count, iou = _match(predictor(frame).result, result, frame)
        matched, worst = matched + count, min(worst, iou)
    print(f"RT-DETR {fmt} export on {RUNTIME[fmt]}, {EXPORT_FRAMES} frames: {matched} instances matched, worst box "
          f"IoU {worst:.4f}")
    assert matched >= 20 and worst >= 0.99


def test_coreml_export_spec_is_valid_and_reopens_as_rtdetr(exports):
    item = exports["coreml"]
    assert item["spec"]["problems"] == [] and "macOS" in item["runtime"]
    reopened = load_model(item["path"])
    assert (reopened.decoder, reopened.required_image_input().resize) == ("rtdetr", Resize.STRETCH)


def test_int8_tflite_is_refused_in_one_line_before_any_work(tmp_path):
    """ai-edge-quantizer's INT8 conversion of yolov8-rtdetr aborts the process after 3 minutes of calibration."""
    from studio.errors import UnsupportedError
    from studio.export import run_export

    with pytest.raises(UnsupportedError) as refused:
        run_export(str(_config_path()), ["onnx", "tflite"], tmp_path / "out", precision="int8")
    message = str(refused.value)
    assert "RT-DETR" in message and "TFLite" in message and "\n" not in message
    assert not any((tmp_path / "out").rglob("*.*"))  # nothing converted, not even the ONNX asked first
