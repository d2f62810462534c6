"""The IoU each task is judged by, as Ultralytics' validators compute it (``ultralytics.utils.metrics``).

- segmentation: mask IoU (``mask_iou``), on masks sampled at the centres of a grid of at most ``MASK_SIDE``
  cells on the longer side (a mask no centre hits keeps the cell of one of its pixels, so no instance
  vanishes). Full-resolution masks of hundreds of low-confidence predictions would take gigabytes as floats,
  and a mask is made from prototypes a quarter of the network input's size (160 cells at 640), coarser than
  the grid; Ultralytics' own validator also compares masks at that quarter size.
- pose: OKS (``kpt_iou``), COCO sigmas for 17 keypoints and 1/K otherwise, object area from the target's box
  × 0.53, over the target keypoints that are visible (visibility ≥ 0.5; all of them for a target that sees none).
- oriented boxes: probabilistic IoU (``batch_probiou``) of the xywhr boxes.

Every function returns a (targets, predictions) matrix; targets and predictions are ``Detections`` (labelled
targets are made into ``Detections`` too) so boxes and every task share one matching code path
(``studio.evaluate.detection_map.match``).
"""

from __future__ import annotations

import numpy as np

from studio.runtime.results import Detections

MASK_SIDE = 256
VISIBLE = 0.5  # a baseline keypoint whose visibility score is below this counts as not visible (as Ultralytics draws)
OKS_AREA_SCALE = 0.53  # Ultralytics' pose validator (from xtcocotools' cocoeval)

TASK_METRICS = {  # task array → (metric key, the IoU it uses, in words)
    "masks": ("mask_map50", f"mask IoU (masks sampled on a grid of ≤ {MASK_SIDE} cells on the longer side)"),
    "keypoints": ("pose_map50", "OKS (COCO sigmas for 17 keypoints, else 1/K; area = box × 0.53)"),
    "rotated": ("obb_map50", "probabilistic IoU of the oriented boxes (probiou)"),
}


def task_of(results: list[Detections]) -> str | None:
    """Which task array the results carry ("masks", "keypoints", "rotated"), or None for plain boxes."""
    for name in TASK_METRICS:
        if any(getattr(r, name) is not None for r in results):
            return name
    return None


def reduced_masks(masks: np.ndarray, side: int = MASK_SIDE) -> np.ndarray:
    """(N, cells) float32 0/1: each mask sampled at the centres of a grid of at most ``side`` cells on its longer
    side (finer than the prototypes a mask is made from); a mask that no centre hits keeps the cell of one of
    its own pixels."""
    count, height, width = masks.shape
    scale = min(1.0, side / max(height, width, 1))
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
    ys = ((np.arange(rows) + 0.5) * height / rows).astype(np.int64)
    xs = ((np.arange(cols) + 0.5) * width / cols).astype(np.int64)
    cells = masks[:, ys[:, None], xs[None, :]].reshape(count, -1)
    for index in np.flatnonzero(~cells.any(1)):
        found_y, found_x = np.nonzero(masks[index])
        if found_y.size:
            middle = found_y.size // 2
            cells[index, int(found_y[middle] * rows // height) * cols + int(found_x[middle] * cols // width)] = True
    return cells.astype(np.float32)


def mask_iou_matrix(true_masks: np.ndarray, pred_masks: np.ndarray) -> np.ndarray:
    import torch
    from ultralytics.utils.metrics import mask_iou

    if len(true_masks) == 0 or len(pred_masks) == 0:
        return np.zeros((len(true_masks), len(pred_masks)), np.float32)
    if true_masks.shape[1:] != pred_masks.shape[1:]:
        raise ValueError(f"masks of {true_masks.shape[1:]} and {pred_masks.shape[1:]} pixels are not one image")
    return mask_iou(torch.from_numpy(reduced_masks(true_masks)), torch.from_numpy(reduced_masks(pred_masks))).numpy()


def oks_sigmas(keypoints: int) -> np.ndarray:
    from ultralytics.utils.metrics import OKS_SIGMA

    return np.asarray(OKS_SIGMA, np.float32) if keypoints == 17 else np.full(keypoints, 1.0 / keypoints, np.float32)


def oks_matrix(true_keypoints: np.ndarray, true_visible: np.ndarray, true_boxes: np.ndarray,
               pred_keypoints: np.ndarray) -> np.ndarray:
    """OKS of each target's visible keypoints (``true_visible`` (T, K) bool) with each prediction's."""
    import torch
    from ultralytics.utils.metrics import kpt_iou

    if len(true_keypoints) == 0 or len(pred_keypoints) == 0:
        return np.zeros((len(true_keypoints), len(pred_keypoints)), np.float32)
    targets = np.concatenate([true_keypoints[..., :2], true_visible[..., None]], -1).astype(np.float32)
    area = np.prod(true_boxes[:, 2:] - true_boxes[:, :2], axis=1).astype(np.float32) * OKS_AREA_SCALE
    return kpt_iou(torch.from_numpy(targets), torch.from_numpy(pred_keypoints[..., :2].astype(np.float32)),
                   area=torch.from_numpy(area), sigma=oks_sigmas(targets.shape[1]).tolist()).numpy()


def probiou_matrix(true_rotated: np.ndarray, pred_rotated: np.ndarray) -> np.ndarray:
    from ultralytics.utils.metrics import batch_probiou

    if len(true_rotated) == 0 or len(pred_rotated) == 0:
        return np.zeros((len(true_rotated), len(pred_rotated)), np.float32)
    return batch_probiou(true_rotated.astype(np.float32), pred_rotated.astype(np.float32)).numpy()


def task_iou(task: str, targets: Detections, predictions: Detections) -> np.ndarray:
    """(targets, predictions) IoU by ``task``; a side without the task's array has nothing to match."""
    true, pred = getattr(targets, task), getattr(predictions, task)
    if true is None or pred is None:
        return np.zeros((len(targets), len(predictions)), np.float32)
    if task == "masks":
        return mask_iou_matrix(true, pred)
    if task == "keypoints":
        visible = true[..., 2] >= VISIBLE
        # OKS over no keypoint is 0: a target that sees none of its keypoints (a person cut off by the frame's
        # edge) would be unmatched even by the baseline itself, so it is judged on all of them.
        visible[~visible.any(1)] = True
        return oks_matrix(true, visible, targets.boxes, pred)
    return probiou_matrix(true, pred)
