"""The shapes of the JSON documents the CLI prints and the window reads: parity, export and bench reports.

The JSON is the source of truth and stays backward compatible (saved sessions and scripts read it): these
types name the keys producers already wrote. A parity result says which kind it is (``kind``) so a reader
does not guess from which keys exist; a parity saved before ``kind`` existed is read by ``with_kind``.
Producers may add keys of their own (an exporter's details, a fidelity's detector figures): a TypedDict
names what readers rely on, not everything there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

from studio.errors import BadInputError


class Interval(TypedDict):
    """A bootstrap interval (``studio.evaluate.evidence.bootstrap_interval``)."""

    low: float
    high: float
    level: float
    method: str


class Evidence(TypedDict):
    """What a figure rests on (``studio.evaluate.evidence.evidence``)."""

    frames: int
    count: int
    unit: str
    enough_at: int
    thin: bool
    warning: NotRequired[str]  # only when thin


class Agreement(TypedDict):
    """The export's decoded results scored against the source's (``studio.evaluate.fidelity``): map50 for
    detectors; mask_map50, pose_map50 (OKS) or obb_map50 (probiou) for segmentation, pose and oriented-box
    models, with box_map50 beside it; top1_agreement for classifiers; cosine for tensor models; each with
    its own extra keys."""

    metric: str
    value: float
    interval: Interval | None
    evidence: Evidence
    method: str


class VisionParity(TypedDict):
    """``studio.verify.parity``: a vision export's outputs against its source's on the same frames."""

    kind: Literal["vision"]
    max_abs_diff: float
    agreement: Agreement
    frames: int
    frame_set: str
    input_shape: list[int]
    method: str


class _LanguageParity(TypedDict):
    metric: str
    passed: bool
    threshold: float


class EncoderParity(_LanguageParity):
    """A sentence encoder's TFLite file against the sentence-transformers pipeline (``studio.lm.mobile.encoder``)."""

    kind: Literal["lm_encoder"]
    min_cosine: float
    cosines: list[float]
    sentences: int
    norms: list[float]
    ms_per_sentence: float


class DecoderParity(_LanguageParity):
    """A causal LM's TFLite file against the PyTorch model (``studio.lm.mobile.decoder``)."""

    kind: Literal["lm_decoder"]
    argmax_agreement: float
    positions: int
    ms_per_window: float


LanguageParity = EncoderParity | DecoderParity
Parity = VisionParity | LanguageParity
PARITY_KINDS = ("vision", "lm_encoder", "lm_decoder")
_KIND_KEYS = (("max_abs_diff", "vision"), ("min_cosine", "lm_encoder"), ("argmax_agreement", "lm_decoder"))


def with_kind(parity: Mapping[str, Any]) -> Parity:
    """``parity`` with its ``kind``, also for one saved before parity results carried it.

    Old saved sessions and reports hold such dicts. Each kind had one key no other kind has, so the kind is
    inferred from that key here, once, rather than by every reader.
    """
    kind = parity.get("kind") or next((k for key, k in _KIND_KEYS if key in parity), None)
    if kind not in PARITY_KINDS:
        raise BadInputError(f"not a parity result (kind {kind!r}, keys {', '.join(sorted(parity))})",
                            fix="export the model again to measure its parity")
    return cast(Parity, {**parity, "kind": kind})


def language_score(parity: LanguageParity) -> float:
    """The one figure a language model's parity is judged by (its ``threshold`` applies to it)."""
    return parity["min_cosine"] if parity["kind"] == "lm_encoder" else parity["argmax_agreement"]


class ExportItem(TypedDict):
    """One exported format (``studio.export._export_one``): the exporter's own details plus these keys."""

    format: str
    path: str
    precision: str
    size_mb: float
    export_seconds: float
    runtime: NotRequired[str]  # what re-opened it
    parity: NotRequired[Parity | None]  # None: the format cannot run here (CoreML on Linux)
    verified: NotRequired[dict[str, Any]]  # a language model's ONNX folder: what re-opening it checked
    requantized: NotRequired[str]  # a recipe's ONNX quantization redone by the converter from the float variant


class ExportReport(TypedDict):
    """``deploy-studio export``'s document (``studio.export.run_export``)."""

    model: str
    precision: str
    recipe: dict[str, Any]
    exports: list[ExportItem]
    frames: dict[str, Any]  # the frames the checks ran on (``FrameSet.describe``)
    machine: dict[str, Any]  # the CPU they ran on (``studio.machine.cpu_description``)


class Percentiles(TypedDict):
    """``studio.metrics.summarize_ms``."""

    p50: float
    p95: float
    p99: float
    mean: float
    min: float


class StageLatency(TypedDict):
    pre: Percentiles
    infer: Percentiles
    post: Percentiles
    total: Percentiles


class BenchMethod(TypedDict):
    summary: str
    frames: str
    timer: str
    stages: str
    percentiles: str
    fps: str
    peak_rss: str
    model_size: str
    gflops: str
    runtime: Any  # the backend's own description (``describe()``)
    opencv_threads: int
    machine: dict[str, Any]


class BareCheck(TypedDict):
    """``--check-bare``: a bare InferenceSession.run timed beside the pipeline."""

    bare_session_run_p50_ms: float
    infer_p50_over_bare_p50: float
    method: str


class BenchReport(TypedDict):
    """``deploy-studio bench``'s document (``studio.bench._report``)."""

    model: str
    runtime: str
    imgsz: int | None
    input_shape: list[int] | None  # None: the runtime did not say what it was fed
    threads: int
    runs: int
    warmup: int
    latency_ms: StageLatency
    fps: float
    peak_rss_mb: float
    model_size_mb: float
    params: int | None
    gflops: float | None
    random_weights: bool
    method: BenchMethod
    check: NotRequired[BareCheck]
