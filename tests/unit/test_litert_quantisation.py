"""The LiteRT backend's quantise / dequantise / box rescaling on hand-written arrays and tensor details."""

from __future__ import annotations

import numpy as np

from studio.runtime.litert_backend import dequantized, quantized, rescale_boxes


def _detail(dtype, scale: float, zero: int) -> dict:
    return {"dtype": dtype, "quantization": (scale, zero)}


def test_int8_round_trip_is_within_half_a_step():
    detail = _detail(np.int8, 1 / 255, -128)
    values = np.array([0.0, 0.25, 0.4, 1.0], np.float32)
    q = quantized(values, detail)
    assert q.dtype == np.int8 and q[0] == -128 and q[-1] == 127
    assert np.abs(dequantized(q, detail) - values).max() <= 0.5 / 255 + 1e-7


def test_values_outside_the_range_are_clipped_not_wrapped():
    detail = _detail(np.uint8, 0.1, 0)
    assert quantized(np.array([-5.0, 30.0], np.float32), detail).tolist() == [0, 255]


def test_float_tensors_pass_through_as_float32():
    detail = _detail(np.float32, 0.0, 0)
    values = np.array([1.5, -2.0], np.float64)
    assert quantized(values, detail).dtype == np.float32
    assert dequantized(np.array([3, 4], np.int32), detail).tolist() == [3.0, 4.0]  # no scale: a plain cast


def test_normalised_boxes_are_scaled_back_to_pixels():
    rows = np.zeros((1, 6, 2), np.float32)
    rows[0, :4, 0] = [0.5, 0.25, 0.1, 0.2]  # cx, cy, w, h
    rows[0, 4, 0] = 0.9
    scaled = rescale_boxes(rows, "yolo", 480, 640)
    assert scaled[0, :4, 0].tolist() == [320.0, 120.0, 64.0, 96.0] and scaled[0, 4, 0] == np.float32(0.9)
    end2end = np.array([[[0.1, 0.2, 0.3, 0.4, 0.8, 1.0]]], np.float32)
    assert np.allclose(rescale_boxes(end2end, "yolo-end2end", 100, 200)[0, 0],
                       [20.0, 20.0, 60.0, 40.0, 0.8, 1.0])


def test_a_head_that_does_not_say_is_told_from_its_output():
    from studio.runtime.litert_backend import _normalised

    normalised = np.full((1, 6, 3), 0.5, np.float32)
    pixels = normalised.copy()
    pixels[0, 0, 2] = 612.0  # an anchor centre near the right edge of a 640 input
    assert _normalised(normalised, "yolo") and not _normalised(pixels, "yolo")
