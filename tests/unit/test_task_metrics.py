"""Fidelity by each task's own IoU on hand-made Detections: masks, OKS, probiou beside the box mAP."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from studio.evaluate.fidelity import compare_results
from studio.evaluate.task_iou import mask_iou_matrix, oks_matrix, probiou_matrix, reduced_masks
from studio.runtime.results import Detections

# The metrics are Ultralytics' (torch). torch's first import runs ldconfig, a child process the fast lane refuses
# inside a test, so it is imported once here, at collection.
importlib.import_module("ultralytics.utils.metrics")

LABELS = ("person", "car")
H, W = 480, 640
BOXES = np.array([[100, 100, 200, 300], [300, 200, 500, 300]], np.float32)


def _masks(shift: int = 0) -> np.ndarray:
    masks = np.zeros((2, H, W), bool)
    for index, (x1, y1, x2, y2) in enumerate(BOXES.astype(int)):
        masks[index, y1:y2, x1 + shift:x2 + shift] = True
    return masks


def _keypoints(offset: float = 0.0) -> np.ndarray:
    grid = np.stack([np.linspace(0, 1, 17), np.linspace(0, 1, 17)], 1)
    points = [np.concatenate([box[:2] + grid * (box[2:] - box[:2]) + offset, np.ones((17, 1))], 1) for box in BOXES]
    return np.asarray(points, np.float32)


def _frame(**arrays: np.ndarray) -> Detections:
    return Detections(BOXES.copy(), np.array([0.9, 0.8], np.float32), np.array([0, 1]), LABELS, **arrays)


def _judge(base: Detections, variant: Detections) -> dict:
    return compare_results([base] * 3, [variant] * 3)


def test_plain_boxes_keep_the_map50_metric():
    result = _judge(_frame(), _frame())
    assert result["metric"] == "map50" and result["value"] == result["map50"] > 0.99
    assert result["evidence"]["unit"] == "baseline boxes"


@pytest.mark.parametrize(("arrays", "metric"), [
    ({"masks": _masks()}, "mask_map50"),
    ({"keypoints": _keypoints()}, "pose_map50"),
    ({"rotated": np.array([[150, 200, 100, 200, 0.0], [400, 250, 200, 100, 0.0]], np.float32)}, "obb_map50"),
])
def test_identical_task_results_score_full_marks(arrays, metric):
    result = _judge(_frame(**arrays), _frame(**arrays))
    assert result["metric"] == metric and result["value"] == result[metric] > 0.99
    assert result["map50"] == result["box_map50"] > 0.99
    assert result["evidence"]["unit"] == "baseline instances" and result["interval"] is not None
    assert metric in result["method"] and result["iou"] in result["method"]


def test_a_mask_shifted_off_its_instance_fails_while_its_box_holds():
    result = _judge(_frame(masks=_masks()), _frame(masks=_masks(shift=150)))
    assert result["metric"] == "mask_map50" and result["value"] == 0.0
    assert result["map50"] > 0.99  # the boxes are identical: box mAP alone would pass this variant


def test_keypoints_moved_past_oks_fail_while_the_box_holds():
    result = _judge(_frame(keypoints=_keypoints()), _frame(keypoints=_keypoints(offset=60.0)))
    assert result["metric"] == "pose_map50" and result["value"] == 0.0 and result["map50"] > 0.99
    near = _judge(_frame(keypoints=_keypoints()), _frame(keypoints=_keypoints(offset=1.0)))
    assert near["value"] > 0.99


def test_a_box_turned_by_45_degrees_with_the_same_upright_box_fails():
    upright = np.array([[150, 200, 100, 20, 0.0], [400, 250, 200, 40, 0.0]], np.float32)
    turned = upright.copy()
    turned[:, 4] = np.pi / 4
    result = _judge(_frame(rotated=upright), _frame(rotated=turned))
    assert result["metric"] == "obb_map50" and result["value"] < 0.5 and result["map50"] > 0.99


def test_a_variant_without_the_task_array_matches_nothing_by_it():
    result = _judge(_frame(masks=_masks()), _frame())
    assert result["metric"] == "mask_map50" and result["value"] == 0.0 and result["map50"] > 0.99


def test_oks_ignores_keypoints_the_target_does_not_see():
    target = _keypoints()
    moved = target.copy()
    moved[:, 5:] += 80.0
    visible = np.zeros((2, 17), bool)
    visible[:, :5] = True
    assert np.allclose(np.diag(oks_matrix(target, visible, BOXES, moved)), 1.0, atol=1e-4)
    assert np.diag(oks_matrix(target, np.ones((2, 17), bool), BOXES, moved)).max() < 0.5


def test_other_keypoint_counts_use_uniform_sigmas():
    target = _keypoints()[:, :5]
    assert np.allclose(np.diag(oks_matrix(target, np.ones((2, 5), bool), BOXES, target)), 1.0, atol=1e-4)


def test_reduced_masks_keep_iou_and_small_instances():
    masks = _masks()
    assert np.allclose(np.diag(mask_iou_matrix(masks, masks)), 1.0, atol=1e-5)
    half = masks.copy()
    half[:, :, 150:] = False  # the first instance loses its right half, the second all of it but none
    iou = mask_iou_matrix(masks, half)
    assert abs(iou[0, 0] - 0.5) < 0.05
    speck = np.zeros((1, 2000, 3000), bool)
    speck[0, 1000, 1500] = True  # one pixel in a 6 MP frame
    assert reduced_masks(speck).sum() == 1
    assert mask_iou_matrix(speck, speck)[0, 0] > 0.99


def test_probiou_of_a_square_does_not_depend_on_its_turn():
    square = np.array([[50, 50, 40, 40, 0.0]], np.float32)
    turned = square.copy()
    turned[0, 4] = np.pi / 4
    assert probiou_matrix(square, turned)[0, 0] > 0.99


def test_classes_still_gate_task_matches():
    variant = _frame(masks=_masks())
    variant.class_ids = np.array([1, 0])
    result = _judge(_frame(masks=_masks()), variant)
    assert result["value"] == 0.0 and result["map50"] == 0.0


# --- labelled YOLO folders of each task -------------------------------------------------------------------------


def _folder(tmp_path, rows: str, size=(200, 100)):
    import cv2

    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((size[1], size[0], 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images" / "b.png"), np.zeros((size[1], size[0], 3), np.uint8))  # background
    (tmp_path / "labels" / "a.txt").write_text(rows)
    return tmp_path


def test_segmentation_polygons_become_pixel_masks_and_their_boxes(tmp_path):
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "1 0.1 0.2 0.5 0.2 0.5 0.8 0.1 0.8\n\n0 0.6 0.1 0.9 0.1 0.75 0.9\n")
    first, background = load_labelled(folder, LABELS, task="segment")
    assert first.path.name == "a.png" and first.classes.tolist() == [1, 0]
    assert np.allclose(first.boxes[0], [20, 20, 100, 80])
    masks = first.targets(100, 200, LABELS).masks
    assert masks is not None and masks.shape == (2, 100, 200)
    assert abs(int(masks[0].sum()) - 81 * 61) <= 81 + 61  # the rectangle's pixels, edges included
    assert masks[0, 50, 60] and not masks[0, 50, 150] and masks[1, 50, 150]
    assert background.polygons == () and background.targets(100, 200, LABELS).masks.shape == (0, 100, 200)
    judged = compare_results([first.targets(100, 200, LABELS)], [first.targets(100, 200, LABELS)])
    assert judged["metric"] == "mask_map50" and judged["value"] > 0.99


def test_pose_rows_give_pixel_keypoints_with_visibility(tmp_path):
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "0 0.5 0.5 0.4 0.6 0.5 0.3 2 0.4 0.6 0 0.6 0.6 1\n")
    item = load_labelled(folder, LABELS, task="pose")[0]
    assert np.allclose(item.boxes[0], [60, 20, 140, 80])
    assert item.keypoints is not None and item.keypoints.shape == (1, 3, 3)
    assert np.allclose(item.keypoints[0, 0], [100, 30, 2]) and item.keypoints[0, 1, 2] == 0
    two = load_labelled(_folder(tmp_path / "xy", "0 0.5 0.5 0.4 0.6 0.5 0.3 0.4 0.6\n"), LABELS,
                        task="pose", kpt_shape=(2, 2))[0]
    assert two.keypoints is not None and np.allclose(two.keypoints[0, :, 2], 1.0)


def test_obb_rows_give_xywhr_and_the_upright_box(tmp_path):
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "1 0.25 0.4 0.75 0.4 0.75 0.6 0.25 0.6\n")
    item = load_labelled(folder, LABELS, task="obb")[0]
    assert np.allclose(item.boxes[0], [50, 40, 150, 60])
    assert item.rotated is not None and np.allclose(item.rotated[0, :4], [100, 50, 100, 20], atol=1e-3)
    assert abs(np.sin(2 * item.rotated[0, 4])) < 1e-5  # level: 0 or a half turn


def test_a_row_that_is_not_the_tasks_names_the_file_and_the_form(tmp_path):
    from studio.errors import BadInputError
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n")
    with pytest.raises(BadInputError, match=r"a\.txt.*line 1 has 5 values: not a row of segment labels.*polygon"):
        load_labelled(folder, LABELS, task="segment")
    with pytest.raises(BadInputError, match="not a row of obb labels"):
        load_labelled(folder, LABELS, task="obb")


def test_a_folder_of_plain_boxes_judges_any_model_by_its_boxes(tmp_path):
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    for task in ("detect", "segment", "pose", "obb"):
        item = load_labelled(folder, LABELS, task=task)[0]
        assert item.polygons is None and item.keypoints is None and item.rotated is None
        assert np.allclose(item.boxes[0], [80, 40, 120, 60])


def test_pose_rows_that_disagree_with_the_models_keypoints_are_refused(tmp_path):
    from studio.errors import BadInputError
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "0 0.5 0.5 0.4 0.6 0.5 0.3 2\n")
    with pytest.raises(BadInputError, match="17"):
        load_labelled(folder, LABELS, task="pose", kpt_shape=(17, 3))


# --- how reports name the task metric ---------------------------------------------------------------------------


def test_reports_name_the_task_metric_with_the_box_map_beside_it():
    from studio.report_text import accuracy_text, fidelity_text
    from ui.variants_panel import evidence_text
    from ui.variants_panel import fidelity_text as variants_fidelity_text

    fidelity = _judge(_frame(masks=_masks()), _frame(masks=_masks(shift=150)))
    text = fidelity_text(fidelity)
    assert text.startswith("mask mAP50 0.0 [0.0–0.0] on 6 baseline instances in 3 frames")
    assert text.endswith(f"(box mAP50 {fidelity['box_map50']})")
    row = {"key": "v1", "fidelity": fidelity["value"], "fidelity_metric": fidelity["metric"],
           "fidelity_interval": fidelity["interval"], "fidelity_evidence": fidelity["evidence"]}
    assert variants_fidelity_text(row).startswith("0.000 mask mAP50")
    assert evidence_text(row).startswith("6 instances / 3 frames")
    pose = _judge(_frame(keypoints=_keypoints()), _frame(keypoints=_keypoints()))
    assert accuracy_text(pose).startswith(f"pose mAP50 (OKS) {pose['value']}  pose mAP50-95 (OKS) "
                                          f"{pose['pose_map50_95']}  box mAP50 {pose['map50']}")
    assert "6 labelled instances in 3 images" in accuracy_text(pose)


def test_a_target_that_sees_none_of_its_keypoints_is_still_matched_by_the_same_keypoints():
    unseen = _keypoints()
    unseen[1, :, 2] = 0.1  # the baseline's second person: every keypoint below the visibility threshold
    result = _judge(_frame(keypoints=unseen), _frame(keypoints=unseen))
    assert result["value"] > 0.99


def test_a_labelling_tools_other_json_does_not_make_a_yolo_folder_coco(tmp_path):
    from studio.evaluate.labelled import load_labelled

    folder = _folder(tmp_path, "1 0.25 0.4 0.75 0.4 0.75 0.6 0.25 0.6\n")
    (folder / "notes.json").write_text('{"info": "Label Studio export"}')
    item = load_labelled(folder, LABELS, task="obb")[0]
    assert item.rotated is not None and item.classes.tolist() == [1]
