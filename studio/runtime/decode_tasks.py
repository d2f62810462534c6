"""Each Ultralytics task's extra channels → its own ``Detections`` array, vectorised in NumPy + OpenCV.

- segmentation: mask coefficients × prototypes (output1), cropped to the box and thresholded at 0 as
  Ultralytics' ``process_mask`` does; each instance is computed at prototype resolution inside its box and
  warped once, straight into original pixels (the letterbox undone in the same affine map);
- pose: keypoints (already in input pixels) back to original pixels, clipped as ``scale_coords`` clips;
- oriented boxes: probabilistic-IoU Fast-NMS as Ultralytics' ``TorchNMS.fast_nms(iou_func=batch_probiou)``,
  rotated boxes scaled as ``scale_boxes(xywh=True)``, the upright box around each polygon.
"""

from __future__ import annotations

import numpy as np

from studio.runtime.preprocess import Geometry

MAX_WH = 7680  # Ultralytics' class offset for batched NMS: boxes of different classes never overlap
PROBIOU_EPS = 1e-7
NMS_BLOCK = 2048  # columns of the IoU matrix at a time: memory stays at candidates × block


# --- segmentation ------------------------------------------------------------------------------------------------

def split_outputs(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, prototypes): the rank-3 and the rank-4 outputs, whichever order a format wrote them in."""
    preds = next((o for o in outputs if o.ndim == 3), outputs[0])
    protos = next((o for o in outputs if o.ndim == 4), None)
    return preds, protos


def prototypes_chw(protos: np.ndarray, channels: int) -> np.ndarray:
    """(channels, mh, mw) float32 from a [1, C, H, W] or channel-last [1, H, W, C] output."""
    first = protos[0]
    if first.shape[0] != channels and first.shape[-1] == channels:
        first = first.transpose(2, 0, 1)
    return np.ascontiguousarray(first, dtype=np.float32)


def _bilinear_taps(positions: np.ndarray, scale: float, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, weight of high) source cells of output pixels ``positions`` when a grid of ``limit`` cells is
    resized bilinearly by 1 / ``scale``, as torch's interpolate with align_corners=False (clamped at the edges)."""
    source = np.maximum((positions + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), limit - 1)
    return low, np.minimum(low + 1, limit - 1), (source - low).astype(np.float32)


def _sample(grid: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray,
            np.ndarray], row_start: int, col_start: int) -> np.ndarray:
    """Bilinear samples of ``grid`` (whose cell [0, 0] is source cell [row_start, col_start]) at the taps given;
    taps outside it read zero (a zero border), as cells outside a cropped mask are."""
    padded = np.zeros((grid.shape[0] + 2, grid.shape[1] + 2), np.float32)
    padded[1:-1, 1:-1] = grid
    r0, r1 = (np.clip(t - row_start + 1, 0, grid.shape[0] + 1) for t in rows[:2])
    c0, c1 = (np.clip(t - col_start + 1, 0, grid.shape[1] + 1) for t in cols[:2])
    fy, fx = rows[2][:, None], cols[2][None, :]
    # Separable, columns first: the same arithmetic as torch's per-pixel formula, on far fewer gathered values.
    needed = np.union1d(r0, r1)
    across = padded[needed][:, c0] * (1 - fx) + padded[needed][:, c1] * fx
    where = np.searchsorted(needed, r0), np.searchsorted(needed, r1)
    return across[where[0]] * (1 - fy) + across[where[1]] * fy


def _reads(taps: tuple[np.ndarray, np.ndarray, np.ndarray], start: int, stop: int) -> np.ndarray:
    """Which outputs read a source cell in [start, stop)."""
    return ((taps[0] >= start) & (taps[0] < stop)) | ((taps[1] >= start) & (taps[1] < stop))


def instance_masks(coeffs: np.ndarray, protos: np.ndarray, boxes: np.ndarray, geometry: Geometry) -> np.ndarray:
    """(N, H, W) bool masks in original pixels, as Ultralytics' ``process_mask(upsample=True)`` followed by
    ``scale_masks`` (and > 0.5) gives them.

    ``coeffs`` (N, C) mask coefficients; ``protos`` (C, mh, mw); ``boxes`` (N, 4) xyxy in network-input pixels.
    Per instance, only inside its box: the logits of the prototype window under the box, sampled bilinearly (four
    gathered taps) at the input pixels the box keeps (crop_mask keeps pixel indices x1 <= i < x2) and
    thresholded at 0; then that 0/1 patch resized bilinearly into original pixels the same way (the letterbox
    undone) and thresholded at 0.5. Work on the box only: no full-frame resize, no loop over pixels.
    """
    return masks_from_patches(instance_mask_patches(coeffs, protos, boxes, geometry), geometry.orig_hw)


Patch = tuple[int, int, "np.ndarray | None"]


def masks_from_patches(patches: list[Patch], orig_hw: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool frames with each patch laid at its place."""
    masks = np.zeros((len(patches), *orig_hw), bool)
    for i, (top, left, patch) in enumerate(patches):
        if patch is not None:
            masks[i, top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    return masks


def instance_mask_patches(coeffs: np.ndarray, protos: np.ndarray, boxes: np.ndarray,
                          geometry: Geometry) -> list[Patch]:
    """Per instance, (top, left, bool patch in original pixels) of its mask, or None where the box keeps no pixel:
    what ``instance_masks`` lays into full frames, so a caller can drop empty masks before paying for a frame-sized
    array each (up to 300 candidates of a 1080p frame would be 600 MB)."""
    height, width = geometry.orig_hw
    count = len(coeffs)
    patches: list[Patch] = [(0, 0, None)] * count
    if count == 0:
        return patches
    _, mh, mw = protos.shape
    in_h, in_w = geometry.input_hw
    sx, sy = mw / in_w, mh / in_h
    pad_x, pad_y = int(geometry.pad_xy[0]), int(geometry.pad_xy[1])
    content_w, content_h = max(round(width * geometry.gain_xy[0]), 1), max(round(height * geometry.gain_xy[1]), 1)
    # Each original column / row reads two input cells of the letterboxed content (shifted by the padding).
    col_taps = _bilinear_taps(np.arange(width), content_w / width, content_w)
    row_taps = _bilinear_taps(np.arange(height), content_h / height, content_h)
    col_taps = (col_taps[0] + pad_x, col_taps[1] + pad_x, col_taps[2])
    row_taps = (row_taps[0] + pad_y, row_taps[1] + pad_y, row_taps[2])
    first = np.clip(np.ceil(boxes[:, :2]), 0, None).astype(np.int64)  # first kept input column, row
    last = np.minimum(np.ceil(boxes[:, 2:]), (in_w, in_h)).astype(np.int64)  # one past the last
    for i in range(count):  # array work on each instance's box; no loop over pixels
        (ix0, iy0), (ix1, iy1) = first[i], last[i]
        cols = np.nonzero(_reads(col_taps, ix0, ix1))[0]
        rows = np.nonzero(_reads(row_taps, iy0, iy1))[0]
        if ix1 <= ix0 or iy1 <= iy0 or not len(cols) or not len(rows):
            continue
        px0 = int(np.clip(np.floor((ix0 + 0.5) * sx - 0.5), 0, mw - 1))
        px1 = int(np.clip(np.floor((ix1 - 0.5) * sx - 0.5) + 2, px0 + 1, mw))
        py0 = int(np.clip(np.floor((iy0 + 0.5) * sy - 0.5), 0, mh - 1))
        py1 = int(np.clip(np.floor((iy1 - 0.5) * sy - 0.5) + 2, py0 + 1, mh))
        window = np.tensordot(coeffs[i].astype(np.float32), protos[:, py0:py1, px0:px1], 1)
        if not (window > 0.0).any():  # bilinear samples are convex blends of these cells: none can exceed 0
            continue
        logits = _sample(window, _bilinear_taps(np.arange(iy0, iy1), sy, mh),
                         _bilinear_taps(np.arange(ix0, ix1), sx, mw), py0, px0)
        inside = (logits > 0.0).astype(np.float32)
        resized = _sample(inside, (row_taps[0][rows], row_taps[1][rows], row_taps[2][rows]),
                          (col_taps[0][cols], col_taps[1][cols], col_taps[2][cols]), iy0, ix0)
        patches[i] = (int(rows[0]), int(cols[0]), resized > 0.5)
    return patches


# --- pose --------------------------------------------------------------------------------------------------------

def keypoints_to_original(values: np.ndarray, kpt_shape: tuple[int, int], geometry: Geometry) -> np.ndarray:
    """(N, K, 3) float32: x, y in original pixels (clipped to the frame) and the visibility score (1.0 where the
    model has no visibility channel)."""
    count = values.shape[0]
    points, dims = kpt_shape
    raw = values[:, :points * dims].reshape(count, points, dims).astype(np.float32)
    out = np.ones((count, points, 3), np.float32)
    height, width = geometry.orig_hw
    out[..., 0] = ((raw[..., 0] - geometry.pad_xy[0]) / geometry.gain_xy[0]).clip(0, width)
    out[..., 1] = ((raw[..., 1] - geometry.pad_xy[1]) / geometry.gain_xy[1]).clip(0, height)
    if dims >= 3:
        out[..., 2] = raw[..., 2]
    return out


def infer_kpt_shape(extra_channels: int) -> tuple[int, int] | None:
    """A pose head's kpt_shape from its channel count when no metadata says it: [K, 3] first (Ultralytics'
    default), else [K, 2]."""
    if extra_channels > 0 and extra_channels % 3 == 0:
        return extra_channels // 3, 3
    if extra_channels > 0 and extra_channels % 2 == 0:
        return extra_channels // 2, 2
    return None


# --- oriented boxes ----------------------------------------------------------------------------------------------

def _covariance(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, angle = boxes[:, 2] ** 2 / 12, boxes[:, 3] ** 2 / 12, boxes[:, 4]
    cos, sin = np.cos(angle), np.sin(angle)
    return a * cos ** 2 + b * sin ** 2, a * sin ** 2 + b * cos ** 2, (a - b) * cos * sin


def probiou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N, M) probabilistic IoU of xywhr boxes (Ultralytics' ``batch_probiou``, arXiv 2106.06072)."""
    first, second = first.astype(np.float64), second.astype(np.float64)
    a1, b1, c1 = (v[:, None] for v in _covariance(first))
    a2, b2, c2 = (v[None, :] for v in _covariance(second))
    x1, y1 = first[:, 0:1], first[:, 1:2]
    x2, y2 = second[None, :, 0], second[None, :, 1]
    denominator = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2 + PROBIOU_EPS
    t1 = ((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2) / denominator * 0.25
    t2 = ((c1 + c2) * (x2 - x1) * (y1 - y2)) / denominator * 0.5
    t3 = np.log(((a1 + a2) * (b1 + b2) - (c1 + c2) ** 2)
                / (4 * np.sqrt(np.clip(a1 * b1 - c1 ** 2, 0, None) * np.clip(a2 * b2 - c2 ** 2, 0, None))
                   + PROBIOU_EPS) + PROBIOU_EPS) * 0.5
    distance = np.clip(t1 + t2 + t3, PROBIOU_EPS, 100.0)
    return 1 - np.sqrt(1.0 - np.exp(-distance) + PROBIOU_EPS)


def rotated_nms(xywhr: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, max_det: int,
                max_candidates: int) -> np.ndarray:
    """Indices kept, by descending score: Fast-NMS (a box is dropped when any higher-scored box of its class, kept
    or not, overlaps it above ``iou``), as Ultralytics' rotated NMS does."""
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    boxes = xywhr[order].astype(np.float64)
    boxes[:, :2] += class_ids[order, None] * MAX_WH
    count = len(order)
    suppressed = np.zeros(count, bool)
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        overlaps = probiou(boxes[:stop], boxes[start:stop])  # rows: every higher-or-equal rank; columns: this block
        above = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        suppressed[start:stop] = ((overlaps > iou) & above).any(0)
    return order[~suppressed][:max_det]


def rotated_corners(xywhr: np.ndarray) -> np.ndarray:
    """(N, 4, 2) polygon corners of xywhr boxes (Ultralytics' ``xywhr2xyxyxyxy`` order)."""
    centre, width, height, angle = xywhr[:, None, :2], xywhr[:, 2:3], xywhr[:, 3:4], xywhr[:, 4:5]
    cos, sin = np.cos(angle), np.sin(angle)
    vec1 = np.concatenate([width / 2 * cos, width / 2 * sin], 1)[:, None]
    vec2 = np.concatenate([-height / 2 * sin, height / 2 * cos], 1)[:, None]
    return np.concatenate([centre + vec1 + vec2, centre + vec1 - vec2, centre - vec1 - vec2, centre - vec1 + vec2], 1)


def rotated_to_original(xywhr: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(rotated xywhr, upright xyxy boxes) in original pixels; the boxes are clipped to the frame like every
    task's boxes, the rotated boxes are not (as Ultralytics' Results.obb keeps them)."""
    rotated = xywhr.astype(np.float32).copy()
    rotated[:, 0] = (rotated[:, 0] - geometry.pad_xy[0]) / geometry.gain_xy[0]
    rotated[:, 1] = (rotated[:, 1] - geometry.pad_xy[1]) / geometry.gain_xy[1]
    rotated[:, 2] /= geometry.gain_xy[0]
    rotated[:, 3] /= geometry.gain_xy[1]
    corners = rotated_corners(rotated)
    height, width = geometry.orig_hw
    boxes = np.concatenate([corners.min(1), corners.max(1)], 1) if len(rotated) else np.zeros((0, 4), np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return rotated, boxes.astype(np.float32)
