"""onnxruntime for early-exit classifiers: one session per segment, stop at the first exit whose score
(``exit_score``: top probability, or the gate's probability of agreeing with the final layer) reaches the
threshold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from studio.runtime.backends import OrtBackend
from studio.runtime.exit_score import exit_score


class EarlyExitBackend:
    name = "ort-early-exit"

    def __init__(self, segments: list[Path], threshold: float, *, gates: list[dict[str, Any]] | None = None,
                 threads: int = 1, graph_level: str = "all", spin: bool = False):
        self.sessions = [OrtBackend(path, threads=threads, graph_level=graph_level, spin=spin) for path in segments]
        self.threshold, self.gates, self.threads = threshold, gates, threads
        self.exits: Counter[int] = Counter()
        self.last_exit = -1
        first = self.sessions[0]
        self.session, self.input_name, self.input_dtype = first.session, first.input_name, first.input_dtype

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        x, previous = tensor, None
        for index, segment in enumerate(self.sessions):
            outputs = segment.session.run(None, {segment.input_name: x})
            if index == len(self.sessions) - 1:
                return self._leave(index, outputs[0])
            x, logits = outputs
            if exit_score(logits, self.gates[index] if self.gates else None, previous) >= self.threshold:
                return self._leave(index, logits)
            previous = int(logits.argmax())
        raise RuntimeError("no segment produced logits")

    def _leave(self, index: int, logits: np.ndarray) -> list[np.ndarray]:
        self.last_exit = index
        self.exits[index] += 1
        return [logits]

    def fixed_input_hw(self) -> tuple[int, int] | None:
        return self.sessions[0].fixed_input_hw()

    def describe(self) -> dict[str, Any]:
        info = self.sessions[0].describe()
        return info | {"early_exit": {"segments": len(self.sessions), "threshold": self.threshold,
                                      "score": "gate" if self.gates else "softmax",
                                      "graph": [str(s.path) for s in self.sessions]}}


def ensure_segments(handle) -> list[Path]:
    """ONNX files for each segment of an early-exit variant, exported once into the studio's cache."""
    import copy
    import hashlib
    import warnings

    import torch

    from studio.atomic import publish, scratch_folder
    from studio.paths import cache_dir
    from studio.torch_variant import state_hash

    net = handle.torch_module
    key = hashlib.sha256(f"{state_hash(net)}|{net!r}".encode()).hexdigest()[:16]
    folder = cache_dir() / "onnx" / f"{handle.name}-segments-{key}"
    paths = [folder / f"segment_{i}.onnx" for i in range(len(net.segments))]
    if all(p.exists() for p in paths):
        return paths
    x = torch.zeros(tuple(int(d) for d in handle.inputs[0].shape))
    with scratch_folder(folder) as staging, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, segment in enumerate(net.segments):
            names = ["logits"] if segment.head is None else ["features", "logits"]
            torch.onnx.export(copy.deepcopy(segment).eval(), (x,), str(staging / paths[index].name), opset_version=18,
                              input_names=["x"], output_names=names, dynamo=False)
            if segment.head is not None:
                x = segment(x)[0]
        if not folder.exists():  # else another job exported the same segments meanwhile: theirs stay
            publish(staging, folder)
    return paths
