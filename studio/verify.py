"""Every exported file is re-opened by the runtime that will run it and compared with its source.

The source runs as the studio's FP32 ONNX graph on onnxruntime; the export runs in its own runtime
(onnxruntime, OpenVINO, …). Both get the same pre-processed bundled frames at the export's input
size (the judging side of the model's own frames when the user gave some). Reported: the largest
absolute difference of the raw outputs and, for detectors, mAP50 of the
export's detections against the source's — by mask IoU, OKS or probiou for segmentation, pose and
oriented-box models, with the box mAP50 beside it — (classifiers: top-1 agreement).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from studio.evaluate.fidelity import PREDICTION_CONF, TARGET_CONF, compare_results
from studio.evaluate.frames import judging_frames
from studio.model import ModelHandle
from studio.reports import Agreement, VisionParity
from studio.runtime.decoders import DECODERS
from studio.runtime.predictor import decode_options
from studio.runtime.preprocess import prepare

Runner = Callable[[np.ndarray], list[np.ndarray]]


def parity(source: ModelHandle, run_source: Runner, run_export: Runner, input_hw: tuple[int, int],
           frames: int = 12, ctx: Any = None) -> VisionParity:
    """Compare two runners on the fixed frame set; ``input_hw`` is the export's input size."""
    decode = DECODERS.get(source.decoder, DECODERS["tensor"])
    reference_opts, export_opts = decode_options(source, TARGET_CONF), decode_options(source, PREDICTION_CONF)
    worst, references, produced = 0.0, [], []
    images, note = judging_frames(frames, ctx)
    for index, frame in enumerate(images):
        if ctx is not None:
            ctx.progress(index / len(images), "verifying the export")
        tensor, geometry = prepare(frame, source.required_image_input(), input_hw, rect=False)
        expected, got = run_source(tensor), run_export(tensor)
        for a, b in zip(expected, got, strict=False):
            if a.shape == b.shape:
                worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
        references.append(decode(expected, geometry, source.labels, reference_opts))
        produced.append(decode(got, geometry, source.labels, export_opts))
    agreement = cast(Agreement, compare_results(references, produced))  # fidelity results are untyped dicts
    return {"kind": "vision", "max_abs_diff": round(worst, 6), "agreement": agreement, "frames": len(images),
            "frame_set": note, "input_shape": [1, 3, *input_hw],
            "method": "same pre-processed frames through the source (FP32 ONNX on onnxruntime) and the export"}
