"""The preview draws each task: a real FrameView, offscreen, rendered and read back pixel by pixel.

The frame (320 × 240, flat grey) is shown in a 640 × 360 widget: scale 1.5, 80 px of margin left and right, so
every check also proves the mapping from original pixels to the widget.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from studio.runtime.decode_tasks import rotated_corners
from studio.runtime.results import Detections
from ui.frame_view import FrameView
from ui.task_drawing import MASK_ALPHA, class_color

GREY = 60
FRAME_W, FRAME_H = 320, 240
WIDGET_W, WIDGET_H = 640, 360
SCALE, LEFT, TOP = 1.5, 80.0, 0.0
LABELS = ("person", "car", "boat")


@pytest.fixture
def view(qtbot):
    widget = FrameView()
    qtbot.addWidget(widget)
    widget.resize(WIDGET_W, WIDGET_H)
    return widget


def _render(view: FrameView, result: Detections) -> np.ndarray:
    view.show_frame(np.full((FRAME_H, FRAME_W, 3), GREY, np.uint8), result, "")
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    assert (image.width(), image.height()) == (WIDGET_W, WIDGET_H)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def _at(pixels: np.ndarray, x: float, y: float) -> np.ndarray:
    """The widget pixel over original pixel (x, y)."""
    return pixels[int(TOP + y * SCALE), int(LEFT + x * SCALE)].astype(int)


def _rgb(class_id: int) -> np.ndarray:
    color = class_color(class_id)
    return np.array([color.red(), color.green(), color.blue()])


def _detections(boxes, class_ids, **task) -> Detections:
    return Detections(np.asarray(boxes, np.float32), np.linspace(0.9, 0.6, len(boxes)).astype(np.float32),
                      np.asarray(class_ids, np.int64), LABELS, **task)


def test_masks_are_blended_in_the_class_colour_inside_the_instance_only(view):
    masks = np.zeros((2, FRAME_H, FRAME_W), bool)
    yy, xx = np.mgrid[:FRAME_H, :FRAME_W]
    masks[0] = (xx - 100) ** 2 + (yy - 120) ** 2 <= 50**2  # a disc inside box 0
    masks[1, 60:180, 200:280] = True  # box 1 filled
    result = _detections([(40, 60, 160, 180), (200, 60, 280, 180)], [2, 1], masks=masks)
    pixels = _render(view, result)
    for index, (x, y) in enumerate([(100, 120), (240, 120)]):
        expected = GREY * (1 - MASK_ALPHA) + _rgb(int(result.class_ids[index])) * MASK_ALPHA
        assert np.abs(_at(pixels, x, y) - expected).max() <= 3, (index, _at(pixels, x, y), expected)
    for x, y in [(50, 75), (150, 170), (20, 120), (300, 220), (180, 120)]:  # box 0's corners off the disc; outside
        assert np.abs(_at(pixels, x, y) - GREY).max() <= 2, ((x, y), _at(pixels, x, y))


def test_the_overlay_covers_the_instances_not_the_frame(view):
    masks = np.zeros((2, FRAME_H, FRAME_W), bool)
    masks[0, 100:120, 30:60] = True
    masks[1, 150:200, 200:210] = True
    pixels = _render(view, _detections([(30, 100, 60, 120), (200, 150, 210, 200)], [0, 1], masks=masks))
    overlay = view._overlay
    assert overlay is not None and overlay.rect == (30, 100, 181, 101)  # the union of the boxes, edges included
    assert overlay.pixels.shape == (101, 181)
    for index, (x, y) in enumerate([(45, 110), (205, 190)]):  # both ends of the union, placed where they belong
        expected = GREY * (1 - MASK_ALPHA) + _rgb(index) * MASK_ALPHA
        assert np.abs(_at(pixels, x, y) - expected).max() <= 3, (index, _at(pixels, x, y))
    assert np.abs(_at(pixels, 100, 160) - GREY).max() <= 2  # inside the union, outside both masks


def test_the_overlay_is_built_once_per_result_not_per_paint(view):
    masks = np.zeros((1, FRAME_H, FRAME_W), bool)
    masks[0, 10:50, 10:50] = True
    result = _detections([(10, 10, 50, 50)], [0], masks=masks)
    _render(view, result)
    overlay = view._overlay
    assert overlay is not None
    view.repaint()
    _render(view, result)  # the same answer on a new frame
    assert view._overlay is overlay
    _render(view, _detections([(10, 10, 50, 50)], [0], masks=masks.copy()))
    assert view._overlay is not overlay


def _ring(count: int, radius: float = 80.0) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False) + 0.1
    points = np.stack([160 + radius * np.cos(angles), 120 + radius * np.sin(angles), np.ones(count)], axis=1)
    return points.astype(np.float32)


def test_keypoints_are_dots_at_their_coordinates_and_unseen_ones_are_left_out(view):
    keypoints = _ring(17)
    keypoints[4, 2] = 0.2  # not seen: neither its dot nor the limbs ending in it are drawn
    result = _detections([(60, 20, 260, 220)], [1], keypoints=keypoints[None])
    pixels = _render(view, result)
    for index, (x, y, seen) in enumerate(keypoints):
        colour = _at(pixels, float(x), float(y))
        if seen >= 0.5:
            assert np.abs(colour - _rgb(1)).max() <= 8, (index, colour)
        else:
            assert np.abs(colour - GREY).max() <= 2, (index, colour)


def test_seventeen_keypoints_get_cocos_limbs_other_counts_points_only(view):
    # Keypoints 5 and 6 (the shoulders) are joined by a COCO limb; its midpoint lies on the line.
    keypoints = _ring(17)
    pixels = _render(view, _detections([(60, 20, 260, 220)], [1], keypoints=keypoints[None]))
    middle = (keypoints[5, :2] + keypoints[6, :2]) / 2
    assert np.abs(_at(pixels, *middle) - _rgb(1)).max() <= 40
    five = _ring(5)
    pixels = _render(view, _detections([(60, 20, 260, 220)], [1], keypoints=five[None]))
    for first, second in [(0, 1), (1, 2), (3, 4)]:
        middle = (five[first, :2] + five[second, :2]) / 2
        assert np.abs(_at(pixels, *middle) - GREY).max() <= 2
    assert np.abs(_at(pixels, *five[2, :2]) - _rgb(1)).max() <= 8


def test_rotated_boxes_are_drawn_as_their_polygons_not_upright_boxes(view):
    xywhr = np.array([[160, 120, 160, 60, 0.5]], np.float32)
    corners = rotated_corners(xywhr)[0]
    upright = [(*corners.min(axis=0), *corners.max(axis=0))]
    pixels = _render(view, _detections(upright, [2], rotated=xywhr))
    colour = _rgb(2)
    for start, end in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        for t in (0.25, 0.5, 0.75):
            x, y = start + (end - start) * t
            wx, wy = int(LEFT + x * SCALE + 0.5), int(TOP + y * SCALE + 0.5)
            near = pixels[wy - 1: wy + 2, wx - 1: wx + 2].reshape(-1, 3).astype(int)
            assert np.abs(near - colour).max(axis=1).min() <= 30, ((x, y), near)
    assert np.abs(_at(pixels, 160, 120) - GREY).max() <= 2  # not filled
    assert np.abs(_at(pixels, upright[0][0] + 1, upright[0][3] - 1) - GREY).max() <= 2  # no upright box corner


# --- A real model's answer, decoded by the engine and drawn ----------------------------------------------------------

RANDOM_CONF = 1e-4  # random-weight configs score every anchor alike, far below 0.25


def _decoded(spec: str, shown: int) -> tuple[np.ndarray, Detections]:
    """bus.jpg through the studio's loader and predictor, its ``shown`` best instances.

    ``spec`` is a zoo name (real weights, the default threshold) or a bundled Ultralytics config (random
    weights, a threshold low enough for them)."""
    import cv2

    from studio.loaders import load_model
    from studio.loaders.ultralytics_yaml import load_bundled
    from studio.media import bundled_image
    from studio.runtime.predictor import make_predictor

    frame = cv2.imread(str(bundled_image("bus.jpg")))
    real = spec.startswith("zoo:")
    handle = load_model(spec, trust=True) if real else load_bundled(spec)  # zoo files: pinned package contents
    result = make_predictor(handle, "torch", conf=0.25 if real else RANDOM_CONF)(frame).result
    assert isinstance(result, Detections) and len(result) >= shown, (spec, len(result))
    rows = slice(0, shown)
    return frame, Detections(result.boxes[rows], result.scores[rows], result.class_ids[rows], result.labels,
                             masks=None if result.masks is None else result.masks[rows],
                             keypoints=None if result.keypoints is None else result.keypoints[rows],
                             rotated=None if result.rotated is None else result.rotated[rows])


def _render_at_frame_size(qtbot, frame: np.ndarray, result: Detections) -> np.ndarray:
    """The widget at the frame's own size: widget pixel (x, y) is frame pixel (x, y)."""
    widget = FrameView()
    qtbot.addWidget(widget)
    widget.resize(frame.shape[1], frame.shape[0])
    widget.show_frame(frame, result, "")
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def _away_from_boxes(shape: tuple[int, int], boxes: np.ndarray, margin: int = 4, tag: int = 30) -> np.ndarray:
    """Pixels at least ``margin`` from every drawn box edge and outside the label tags above the boxes."""
    clear = np.ones(shape, bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        for x in (x1, x2):
            clear[max(y1 - margin, 0): y2 + margin, max(x - margin, 0): x + margin] = False
        for y in (y1, y2):
            clear[max(y - margin, 0): y + margin, max(x1 - margin, 0): x2 + margin] = False
        clear[max(y1 - tag, 0): y1 + tag, max(x1 - margin, 0): x1 + 8 * tag] = False
    return clear


def test_a_segmentation_models_masks_are_drawn_in_the_class_colour(qtbot):
    frame, result = _decoded("yolov8n-seg.yaml", shown=2)
    assert result.masks is not None and result.masks.shape[1:] == frame.shape[:2]
    pixels = _render_at_frame_size(qtbot, frame, result).astype(int)
    clear = _away_from_boxes(frame.shape[:2], result.boxes)
    rgb = frame[..., ::-1].astype(int)
    top = result.masks[0] & clear  # the best instance is drawn over the others
    assert top.sum() > 1000, "the decoded mask should cover a visible area"
    colour = _rgb(int(result.class_ids[0]))
    premultiplied = np.round(colour * MASK_ALPHA)
    expected = premultiplied + rgb[top] * (1 - round(255 * MASK_ALPHA) / 255)
    assert np.abs(pixels[top] - expected).max() <= 3
    outside = ~result.masks.any(axis=0) & clear
    assert outside.sum() > 1000
    assert np.abs(pixels[outside] - rgb[outside]).max() <= 2


def test_a_pose_models_keypoints_are_dots_at_the_decoded_coordinates(qtbot):
    frame, result = _decoded("zoo:yolo11n-pose", shown=3)  # real weights: the people in bus.jpg
    assert result.keypoints is not None and result.keypoints.shape[1:] == (17, 3)
    pixels = _render_at_frame_size(qtbot, frame, result).astype(int)
    seen = result.keypoints[..., 2] >= 0.5
    assert seen.sum() >= 20, "three people facing the camera show most of their keypoints"
    for index, point in zip(*np.nonzero(seen), strict=True):
        x, y = result.keypoints[index, point, :2]
        colour = _rgb(int(result.class_ids[index]))
        assert np.abs(pixels[min(int(y), frame.shape[0] - 1), min(int(x), frame.shape[1] - 1)] - colour).max() <= 8


def test_an_obb_models_polygons_are_drawn_on_their_edges(qtbot):
    frame, result = _decoded("yolo11n-obb.yaml", shown=1)
    assert result.rotated is not None
    pixels = _render_at_frame_size(qtbot, frame, result).astype(int)
    height, width = frame.shape[:2]
    colour = _rgb(int(result.class_ids[0]))
    corners = rotated_corners(result.rotated)[0]
    checked = 0
    for start, end in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        for t in (0.3, 0.5, 0.7):
            x, y = (int(v + 0.5) for v in start + (end - start) * t)
            if 2 <= x < width - 2 and 2 <= y < height - 2:
                near = pixels[y - 1: y + 2, x - 1: x + 2].reshape(-1, 3)
                assert np.abs(near - colour).max(axis=1).min() <= 30, ((x, y), near)
                checked += 1
    assert checked >= 3, "the decoded polygon should lie (partly) inside the frame"


def test_the_ab_preview_of_a_pose_model_agrees_with_itself_and_both_panes_draw_it(qtbot):
    from studio.loaders import load_model
    from studio.media import bundled_image
    from studio.preview import Lane, LivePreview

    handle = load_model("zoo:yolo11n-pose", trust=True)
    lanes = [Lane.create(name, handle, threads=1) for name in ("A", "B")]
    preview = LivePreview(str(bundled_image("zidane.jpg")), lanes, pace=False).start()  # looped: two people
    try:
        qtbot.waitUntil(lambda: preview.processed >= 4 or preview.error is not None, timeout=120_000)
    finally:
        assert preview.stop()
    assert preview.error is None
    assert preview.disagreement_total == 0  # the same model on the same frames: every person matched by OKS
    snapshot = preview.latest()
    assert snapshot is not None
    for prediction in snapshot.predictions:
        result = prediction.result
        assert isinstance(result, Detections) and result.keypoints is not None and len(result) >= 1
        pixels = _render_at_frame_size(qtbot, snapshot.frame, result).astype(int)
        seen = np.argwhere(result.keypoints[..., 2] >= 0.5)
        assert len(seen) >= 10, "two people facing the camera show their keypoints"
        for index, point in seen:
            x, y = result.keypoints[index, point, :2]
            colour = _rgb(int(result.class_ids[index]))
            spot = pixels[min(int(y), pixels.shape[0] - 1), min(int(x), pixels.shape[1] - 1)]
            assert np.abs(spot - colour).max() <= 8
