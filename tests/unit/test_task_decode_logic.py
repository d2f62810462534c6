"""Segment, pose and OBB decoding on hand-written arrays whose answer is known (studio.runtime.decode_tasks and the
decoders built on it)."""

from __future__ import annotations

import numpy as np
import pytest

from studio.errors import BadInputError
from studio.loaders.ultralytics_support import kpt_shape_from, task_decode_fields
from studio.model import Task, TensorSpec
from studio.runtime.decode_tasks import instance_masks, keypoints_to_original, probiou, rotated_nms, rotated_to_original
from studio.runtime.decoders import DecodeOptions, decode_yolo, decode_yolo_end2end, decode_yolo_obb
from studio.runtime.preprocess import Geometry
from studio.runtime.results import Detections

IDENTITY = Geometry(orig_hw=(32, 32), input_hw=(32, 32), gain_xy=(1.0, 1.0), pad_xy=(0.0, 0.0))


def _half_planes() -> np.ndarray:
    """One 8x8 prototype: +1 on the left half, -1 on the right (a 32x32 input sees it 4x larger)."""
    proto = -np.ones((1, 8, 8), np.float32)
    proto[:, :, :4] = 1.0
    return proto


def test_a_positive_coefficient_keeps_the_left_half_inside_the_box():
    masks = instance_masks(np.array([[1.0]], np.float32), _half_planes(), np.array([[4.0, 8.0, 28.0, 24.0]]), IDENTITY)
    expected = np.zeros((32, 32), bool)
    expected[8:24, 4:16] = True  # left of the prototypes' sign change at x = 16, cropped to the box
    assert masks.shape == (1, 32, 32) and (masks[0] == expected).all()


def test_a_negative_coefficient_keeps_the_right_half():
    masks = instance_masks(np.array([[-1.0]], np.float32), _half_planes(), np.array([[0.0, 0.0, 32.0, 32.0]]),
                           IDENTITY)
    assert masks[0][:, 16:].all() and not masks[0][:, :16].any()


def test_the_letterbox_is_undone_into_original_pixels():
    # A 16x32 frame letterboxed into 32x32: 8 rows of padding above and below, gain 1.
    geometry = Geometry(orig_hw=(16, 32), input_hw=(32, 32), gain_xy=(1.0, 1.0), pad_xy=(0.0, 8.0))
    masks = instance_masks(np.array([[1.0]], np.float32), _half_planes(), np.array([[0.0, 8.0, 32.0, 24.0]]),
                           geometry)
    assert masks.shape == (1, 16, 32)
    assert masks[0][:, :16].all() and not masks[0][:, 16:].any()


def test_no_instances_give_an_empty_stack():
    assert instance_masks(np.zeros((0, 1), np.float32), _half_planes(), np.zeros((0, 4)), IDENTITY).shape == (0, 32, 32)


def _segment_outputs(score: float) -> list[np.ndarray]:
    """One anchor of a 1-class, 1-coefficient segment head: box centre (10, 16), size 12x16; plus the prototypes."""
    pred = np.array([[10.0], [16.0], [12.0], [16.0], [score], [1.0]], np.float32)[None]
    return [pred, _half_planes()[None]]


def test_decode_yolo_attaches_the_masks_of_a_segment_head():
    found = decode_yolo(_segment_outputs(0.9), IDENTITY, ("thing",), DecodeOptions(mask_channels=1))
    assert len(found) == 1 and found.masks is not None and found.keypoints is None
    assert found.masks[0].sum() == 12 * 16 and found.masks[0][8:24, 4:16].all()


def test_an_instance_whose_mask_is_empty_is_dropped_as_ultralytics_drops_it():
    outputs = _segment_outputs(0.9)
    outputs[0][0, 5, 0] = -1.0  # the coefficient now selects the right half, which lies outside this box
    found = decode_yolo(outputs, IDENTITY, ("thing",), DecodeOptions(mask_channels=1))
    assert len(found) == 0 and found.masks is not None and found.masks.shape == (0, 32, 32)


def test_rows_without_the_promised_coefficients_are_one_line():
    with pytest.raises(BadInputError, match="mask coefficients"):
        decode_yolo(_segment_outputs(0.9), IDENTITY, ("thing",), DecodeOptions(mask_channels=32))


def test_keypoints_go_back_to_original_pixels_with_their_visibility():
    geometry = Geometry(orig_hw=(100, 200), input_hw=(64, 64), gain_xy=(0.32, 0.32), pad_xy=(0.0, 16.0))
    values = np.array([[32.0, 32.0, 0.7, 0.0, 100.0, 0.2]], np.float32)  # two keypoints, x y visibility
    points = keypoints_to_original(values, (2, 3), geometry)
    assert np.allclose(points[0, 0], [100.0, 50.0, 0.7]) and np.allclose(points[0, 1], [0.0, 100.0, 0.2])  # clipped
    assert np.allclose(keypoints_to_original(values[:, :4], (2, 2), geometry)[0, :, 2], 1.0)


def test_end2end_pose_rows_carry_their_keypoints():
    rows = np.array([[[2.0, 2.0, 10.0, 10.0, 0.8, 0.0, 5.0, 6.0, 0.9]]], np.float32)
    found = decode_yolo_end2end([rows], IDENTITY, ("person",), DecodeOptions(kpt_shape=(1, 3)))
    assert found.keypoints is not None and np.allclose(found.keypoints[0, 0], [5.0, 6.0, 0.9])


def test_a_kpt_shape_the_rows_contradict_is_one_line():
    rows = np.array([[[2.0, 2.0, 10.0, 10.0, 0.8, 0.0, 5.0, 6.0, 0.9]]], np.float32)
    with pytest.raises(BadInputError, match="kpt_shape"):
        decode_yolo_end2end([rows], IDENTITY, ("person",), DecodeOptions(kpt_shape=(17, 3)))


def test_probiou_is_one_for_the_same_box_and_near_zero_far_apart():
    box = np.array([[10.0, 10.0, 8.0, 4.0, 0.3]])
    assert probiou(box, box)[0, 0] == pytest.approx(1.0, abs=1e-3)
    far = box.copy()
    far[0, 0] += 100.0
    assert probiou(box, far)[0, 0] < 1e-3


def test_rotated_nms_is_fast_nms_per_class():
    # A overlaps B, B overlaps C, A does not overlap C: Fast-NMS drops B and C (a dropped box still suppresses).
    boxes = np.array([[0.0, 0, 10, 4, 0], [3.0, 0, 10, 4, 0], [6.0, 0, 10, 4, 0]])
    scores = np.array([0.9, 0.8, 0.7])
    assert rotated_nms(boxes, scores, np.zeros(3, np.int64), 0.3, 300, 30_000).tolist() == [0]
    assert sorted(rotated_nms(boxes, scores, np.array([0, 1, 2]), 0.3, 300, 30_000).tolist()) == [0, 1, 2]


def test_rotated_boxes_scale_back_and_get_their_upright_box():
    geometry = Geometry(orig_hw=(100, 100), input_hw=(50, 50), gain_xy=(0.5, 0.5), pad_xy=(0.0, 0.0))
    rotated, boxes = rotated_to_original(np.array([[25.0, 25.0, 10.0, 10.0, np.pi / 4]]), geometry)
    assert np.allclose(rotated[0], [50.0, 50.0, 20.0, 20.0, np.pi / 4], atol=1e-5)
    half_diagonal = 10 * np.sqrt(2)
    assert np.allclose(boxes[0], [50 - half_diagonal, 50 - half_diagonal, 50 + half_diagonal, 50 + half_diagonal],
                       atol=1e-4)


def test_decode_yolo_obb_reads_both_layouts():
    columns = np.array([[16.0], [16.0], [8.0], [4.0], [0.9], [0.5]], np.float32)[None]  # cx cy w h score angle
    found = decode_yolo_obb([columns], IDENTITY, ("ship",), DecodeOptions())
    assert found.rotated is not None and np.allclose(found.rotated[0], [16, 16, 8, 4, 0.5])
    rows = np.array([[[16.0, 16.0, 8.0, 4.0, 0.9, 0.0, 0.5]]], np.float32)  # NMS-free rows
    again = decode_yolo_obb([rows], IDENTITY, ("ship",), DecodeOptions(end2end=True))
    assert np.allclose(again.rotated, found.rotated) and np.allclose(again.boxes, found.boxes)


def test_as_list_carries_each_tasks_fields_compactly():
    found = decode_yolo(_segment_outputs(0.9), IDENTITY, ("thing",), DecodeOptions(mask_channels=1))
    row = found.as_list()[0]
    assert row["mask_area"] == 12 * 16 and len(row["polygon"]) == 4
    found.keypoints = np.array([[[1.0, 2.0, 0.5]]], np.float32)
    found.rotated = np.array([[16.0, 16.0, 12.0, 16.0, 0.0]], np.float32)
    row = found.as_list()[0]
    assert row["keypoints"] == [[1.0, 2.0, 0.5]] and row["xywhr"] == [16.0, 16.0, 12.0, 16.0, 0.0]
    assert Detections.empty(("thing",)).as_list() == []


def test_decode_fields_come_from_metadata_then_from_output_shapes():
    assert kpt_shape_from({"kpt_shape": "[17, 3]"}) == (17, 3)
    assert kpt_shape_from({"kpt_shape": "__import__('os')"}) is None
    outputs = (TensorSpec("output0", (1, 4 + 1 + 12, 8400), "float32"),)
    assert task_decode_fields(Task.POSE, {}, outputs, ("person",)) == ((4, 3), 0, False)
    protos = (TensorSpec("output0", (1, 116, "anchors"), "float32"),
              TensorSpec("output1", (1, 32, "h", "w"), "float32"))
    assert task_decode_fields(Task.SEGMENT, {"end2end": "True"}, protos, ("a",) * 80) == (None, 32, True)


def test_mask_channels_are_read_off_the_rows_even_where_anchors_are_fewer_than_channels():
    # yolov8-seg exported at 64 px: [1, 4 + 80 + 32, 84] rows beside [1, 32, 16, 16] prototypes. The prototypes'
    # smaller side (16) is not the channel count, and neither is the longer-axis reading of the rows.
    from studio.loaders.ultralytics_support import task_decode_fields
    from studio.model import Task, TensorSpec

    outputs = (TensorSpec("output0", (1, 116, 84), "float32"), TensorSpec("output1", (1, 32, 16, 16), "float32"))
    labels = tuple(f"c{i}" for i in range(80))
    assert task_decode_fields(Task.SEGMENT, {}, outputs, labels)[1] == 32
    nhwc = (outputs[0], TensorSpec("output1", (1, 160, 160, 32), "float32"))  # TFLite's channel-last prototypes
    assert task_decode_fields(Task.SEGMENT, {}, nhwc, labels)[1] == 32
