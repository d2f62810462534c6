"""ai_edge_litert's TFLite interpreter behind the studio's ``Backend`` protocol, on the CPU.

Takes the studio's 1×3×H×W float32 tensor and gives float32 outputs: an NHWC file gets the tensor transposed,
an int8/uint8 input is quantised with the tensor's own scale and zero point and int outputs are dequantised;
Ultralytics' LiteRT export divides box coordinates by the input size, which is undone here so that its
outputs read like the ONNX graph's. XNNPACK (the interpreter's default CPU delegate) is on unless asked off.

GPU: the Linux wheel of ai_edge_litert 2.3 carries no GPU delegate for this interpreter; it ships a WebGPU
accelerator (``libLiteRtWebGpuAccelerator.so``) for its separate ``CompiledModel`` API only. So ``device``
is the CPU or an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import BadInputError, UnsupportedError, first_line
from studio.model import ModelHandle, Task

CPU_DEVICES = (None, "cpu", "CPU")
NORMALISED_MAX = 1.5  # box values of a 0–1 head stay near 1 (a box may reach past the edge); pixels go far beyond


def quantized(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float values as the tensor's type: an integer tensor with a scale takes round(v / scale + zero point)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(values / scale + zero), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def dequantized(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """An output as float32: an integer tensor with a scale is (q − zero point) × scale."""
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(values.dtype, np.integer) and scale:
        return ((values.astype(np.float32) - zero) * scale).astype(np.float32)
    return values.astype(np.float32)


def rescale_boxes(output: np.ndarray, decoder: str, height: int, width: int, *, kpt_start: int | None = None,
                  kpt_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Coordinates normalised to 0–1 back to input pixels: rows 0–3 of [1, 4 + n, anchors] (yolo, yolo-obb: x, y,
    w, h), or columns 0–3 of [1, detections, 6 + extras] rows (yolo-end2end, and yolo-obb when it has rows); and a
    pose head's keypoint x and y, which Ultralytics' LiteRT export normalises too, from ``kpt_start`` on."""
    output = output.copy()
    rows = decoder == "yolo-end2end" or (decoder == "yolo-obb" and _has_rows(output))
    view = output if rows else np.moveaxis(output, 1, 2)  # (1, instances, channels) either way, writing through
    view[..., [0, 2]] *= width  # x1, x2 or cx, w
    view[..., [1, 3]] *= height
    if kpt_shape is not None and kpt_start is not None:
        points, dims = kpt_shape
        xs = [kpt_start + k * dims for k in range(points)]
        view[..., xs] *= width
        view[..., [x + 1 for x in xs]] *= height
    return output


def _has_rows(output: np.ndarray) -> bool:
    """An NMS-free OBB head writes [1, detections, 7] rows; its other layout is [1, 4 + classes + 1, anchors]."""
    return output.ndim == 3 and output.shape[2] == 7 and output.shape[1] != 7


def _normalised(output: np.ndarray, decoder: str) -> bool:
    rows = decoder == "yolo-end2end" or (decoder == "yolo-obb" and _has_rows(output))
    boxes = output[..., :4] if rows else output[:, :4]
    return bool(boxes.size) and float(np.abs(boxes).max()) <= NORMALISED_MAX


class LiteRtBackend:
    """One ``ai_edge_litert.interpreter.Interpreter`` on a ``.tflite`` file."""

    name = "litert"

    def __init__(self, path: Path, *, threads: int = 1, xnnpack: bool = True, box_decoder: str | None = None,
                 boxes_known: bool = True):
        """``box_decoder``: the decoder of a head whose boxes may be normalised to 0–1; ``boxes_known``: they are
        (the file says so), else they are taken as normalised only when every box value of the output is within
        0–1.5 — a pixel-coordinate YOLO head's anchor centres span the whole input, whatever the image."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BadInputError(f"ai_edge_litert cannot run this file ({first_line(exc, 160)})", path=path,
                                fix="check it with 'deploy-studio info'") from exc
        self.path, self.threads, self.xnnpack, self.box_decoder = path, threads, xnnpack, box_decoder
        self.boxes_known = boxes_known
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        self.note = ""
        # A pose head's keypoints are normalised like its boxes: where they start in a row, and their layout.
        self.kpt_start: int | None = None
        self.kpt_shape: tuple[int, int] | None = None

    @classmethod
    def for_handle(cls, handle: ModelHandle, *, threads: int = 1, device: str | None = None,
                   xnnpack: bool = True) -> LiteRtBackend:
        from studio.loaders.tflite_file import BOXES_KEY

        if device not in CPU_DEVICES:
            raise UnsupportedError(f"LiteRT device '{device}' is not available here",
                                   fix="available: cpu (ai_edge_litert's Linux interpreter has no GPU delegate)")
        if handle.format != "tflite" or not handle.source_paths:
            raise UnsupportedError(f"{handle.name} is not a .tflite file; LiteRT runs TFLite files",
                                   fix="export it with '--to tflite' and open the .tflite, or use --runtime ort")
        boxes = handle.metadata.get(BOXES_KEY)
        backend = cls(handle.source_paths[0], threads=threads, xnnpack=xnnpack,
                      box_decoder=handle.decoder if boxes in ("normalised", "auto") else None,
                      boxes_known=boxes == "normalised")
        if backend.box_decoder is not None:
            backend.with_keypoints_of(handle)
        if handle.decoder == "tensor":
            backend.note = ("raw output tensors: nothing is drawn, as the file names no task that says what they "
                            "mean")
        return backend

    def with_keypoints_of(self, handle: ModelHandle) -> LiteRtBackend:
        """Also scale back a pose head's keypoints (normalised like its boxes), laid out as ``handle`` says."""
        if handle.task == Task.POSE:
            from studio.loaders.ultralytics_support import task_decode_fields

            self.kpt_shape = task_decode_fields(handle.task, handle.metadata, handle.outputs, handle.labels)[0]
            self.kpt_start = 6 if handle.decoder == "yolo-end2end" else 4 + len(handle.labels)
        return self

    def _set_shape(self, detail: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """Resize a dynamic input to ``shape`` (a no-op when it already has it); the refreshed detail."""
        if tuple(detail["shape"]) == shape:
            return detail
        self.interpreter.resize_tensor_input(detail["index"], list(shape), strict=True)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        return next(d for d in self.inputs if d["index"] == detail["index"])

    def _invoke(self) -> list[np.ndarray]:
        self.interpreter.invoke()
        return [dequantized(self.interpreter.get_tensor(o["index"]), o) for o in self.outputs]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        detail = self.inputs[0]
        signature = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
        nhwc = len(signature) == 4 and signature[3] == tensor.shape[1] and signature[1] != tensor.shape[1]
        feed = tensor.transpose(0, 2, 3, 1) if nhwc else tensor
        detail = self._set_shape(detail, tuple(feed.shape))
        self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(quantized(feed, detail)))
        results = self._invoke()
        # The predictions are the rank-3 output; a segment head's prototypes (rank 4) may come first in a TFLite file.
        at = next((i for i, r in enumerate(results) if r.ndim == 3), 0)
        if self.box_decoder is not None and (self.boxes_known or _normalised(results[at], self.box_decoder)):
            height, width = tensor.shape[2:]
            results[at] = rescale_boxes(results[at], self.box_decoder, height, width, kpt_start=self.kpt_start,
                                        kpt_shape=self.kpt_shape)
        return results

    def run_feed(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """A tensor model's inputs by name (float values are quantised for integer inputs)."""
        for detail in list(self.inputs):
            if detail["name"] not in feed:
                raise UnsupportedError(f"no value for input '{detail['name']}' of {self.path.name}")
            values = feed[detail["name"]]
            detail = self._set_shape(detail, tuple(values.shape))
            self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(quantized(values, detail)))
        return self._invoke()

    def fixed_input_hw(self) -> tuple[int, int] | None:
        signature = [int(d) for d in self.inputs[0].get("shape_signature", self.inputs[0]["shape"])]
        if len(signature) != 4:
            return None
        hw = signature[1:3] if signature[3] == 3 and signature[1] != 3 else signature[2:4]
        return (hw[0], hw[1]) if min(hw) > 0 else None

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        info: dict[str, Any] = {
            "runtime": f"ai_edge_litert {version('ai-edge-litert')}",
            "delegate": "XNNPACK" if self.xnnpack else "none (built-in kernels only)",
            "threads": self.threads,
            "device": "cpu",
            "file": str(self.path),
        }
        if self.box_decoder is not None:
            info["boxes"] = ("normalised to 0–1 by the export; scaled back to input pixels" if self.boxes_known else
                             f"scaled back to input pixels when every box value is within 0–{NORMALISED_MAX} "
                             "(the file does not say whether its YOLO head normalises them)")
        if self.note:
            info["outputs"] = self.note
        return info
