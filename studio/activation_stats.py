"""Activation statistics from a calibration pass: which tensors will be hard to carry in INT8.

Every Conv/MatMul/Gemm/Concat/Add output (and every Concat input) is exposed as a graph output
and run on the calibration inputs; per tensor the range and the excess kurtosis (heavy tails: a
few outliers stretch the INT8 scale) are measured from running moments. Concat nodes whose
inputs live on very different ranges are flagged too: one INT8 scale cannot carry both (a YOLO
head joining pixel boxes and 0–1 scores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WATCHED_OPS = {"Conv", "MatMul", "Gemm", "Concat", "Add"}
KURTOSIS_FLAG = 30.0
CONCAT_RANGE_RATIO_FLAG = 50.0


class _Moments:
    def __init__(self) -> None:
        self.count, self.low, self.high = 0, np.inf, -np.inf
        self.sums = np.zeros(4)

    def add(self, values: np.ndarray) -> None:
        x = values.astype(np.float64).reshape(-1)
        if x.size == 0:
            return
        self.count += x.size
        self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
        x2 = x * x
        self.sums += (x.sum(), x2.sum(), (x2 * x).sum(), (x2 * x2).sum())

    def summary(self) -> dict[str, float]:
        e1, e2, e3, e4 = self.sums / max(self.count, 1)
        variance = max(e2 - e1 * e1, 1e-30)
        m4 = e4 - 4 * e1 * e3 + 6 * e1 * e1 * e2 - 3 * e1**4
        return {"min": float(self.low), "max": float(self.high), "std": float(variance**0.5),
                "kurtosis": float(m4 / variance**2 - 3)}


def activation_report(onnx_path: Path, inputs: list[np.ndarray], ctx: Any = None, top: int = 15) -> dict[str, Any]:
    """Per-tensor range and kurtosis over ``inputs``; the tensors most likely to hurt INT8 first."""
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    floats = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    every = {out: node for node in model.graph.node for out in node.output if out in floats}
    concat_inputs = {i for node in model.graph.node if node.op_type == "Concat" for i in node.input if i in every}
    producers = {out: node for out, node in every.items() if node.op_type in WATCHED_OPS or out in concat_inputs}
    existing = {o.name for o in model.graph.output}
    for name in producers:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    del model.graph.value_info[:]  # shapes inferred at the calibration size would not fit other sizes
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    moments = {name: _Moments() for name in names if name in producers}
    feed_name = session.get_inputs()[0].name
    for index, tensor in enumerate(inputs):
        if ctx is not None:
            ctx.progress(index / len(inputs), "activation statistics")
        for name, value in zip(names, session.run(names, {feed_name: tensor}), strict=True):
            if name in moments:
                moments[name].add(value)
    stats = {name: m.summary() for name, m in moments.items()}
    rows = [_row(producers[name], name, s) for name, s in stats.items()]
    rows += _concat_flags(model, stats)
    rows.sort(key=lambda r: (not r["flagged"], -r["score"]))
    return {"tensors": len(stats), "flagged": sum(r["flagged"] for r in rows), "rows": rows[:top],
            "method": f"{len(inputs)} calibration inputs; excess kurtosis from running moments; flagged when "
                      f"kurtosis > {KURTOSIS_FLAG:g} or a Concat joins inputs whose ranges differ "
                      f"> {CONCAT_RANGE_RATIO_FLAG:g}×"}


def _row(node: Any, tensor: str, s: dict[str, float]) -> dict[str, Any]:
    flagged = bool(s["kurtosis"] > KURTOSIS_FLAG)
    return {"node": node.name, "op": node.op_type, "tensor": tensor, "min": round(s["min"], 4),
            "max": round(s["max"], 4), "kurtosis": round(s["kurtosis"], 2), "flagged": flagged,
            "why": f"heavy-tailed (kurtosis {s['kurtosis']:.0f})" if flagged else "", "score": s["kurtosis"]}


def _concat_flags(model: Any, stats: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        spans = [stats[i]["max"] - stats[i]["min"] for i in node.input if i in stats]
        if len(spans) < 2 or min(spans) <= 0:
            continue
        ratio = max(spans) / min(spans)
        if ratio > CONCAT_RANGE_RATIO_FLAG:
            rows.append({"node": node.name, "op": "Concat", "tensor": node.output[0],
                         "min": round(min(stats[i]["min"] for i in node.input if i in stats), 4),
                         "max": round(max(stats[i]["max"] for i in node.input if i in stats), 4),
                         "kurtosis": None, "flagged": True, "score": ratio,
                         "why": f"joins inputs whose ranges differ {ratio:.0f}× into one INT8 scale"})
    return rows
