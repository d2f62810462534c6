"""What a model kind brings to a fixed-window TFLite or CoreML export; one object per kind (encoder, decoder).

The format modules (``tflite``, ``coreml``) drive the conversion and ask the kind for what differs: its own
refusals, the wrapped module and its sample inputs, the check against the untouched PyTorch model, the
runtime verification of a TFLite file, the output's shape and the metadata it adds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from studio.errors import UnsupportedError
from studio.model import ModelHandle
from studio.reports import LanguageParity

MASKED = -1e4  # additive mask value; finite, so an FP16 runtime does not produce inf - inf


class LanguageKind(ABC):
    name: str  # the report's "kind"
    inputs: tuple[str, ...]  # the graph's int32 inputs, each (1, seq_len)
    output: str  # the graph's one float32 output
    kv_cache: bool | None  # the report's "kv_cache"
    notes: ClassVar[dict[str, str]]  # keys added at the end of the report

    @abstractmethod
    def check(self, handle: ModelHandle, seq_len: int, fmt: str) -> None:
        """An UnsupportedError naming why ``handle`` cannot become ``fmt`` at ``seq_len`` tokens."""

    @abstractmethod
    def check_tflite(self, handle: ModelHandle) -> None:
        """A refusal that only the TFLite format has for this kind."""

    @abstractmethod
    def wrap(self, handle: ModelHandle, seq_len: int) -> tuple[Any, tuple[Any, ...]]:
        """The fixed-window module (in eval mode) and its int32 sample inputs, in ``inputs``' order."""

    @abstractmethod
    def check_torch(self, handle: ModelHandle, module: Any, seq_len: int) -> tuple[bool, dict[str, Any]]:
        """``module`` (wrapped or traced) on the verification inputs against the pipeline: (passed, figures)."""

    @abstractmethod
    def verify_tflite(self, runner: Any, declared: dict[str, Any], handle: ModelHandle,
                      seq_len: int) -> LanguageParity:
        """The TFLite signature runner against the PyTorch model; the result has ``passed`` and ``metric``."""

    @abstractmethod
    def output_shape(self, handle: ModelHandle, seq_len: int) -> list[int]:
        """The output's shape."""

    @abstractmethod
    def metadata(self, handle: ModelHandle, seq_len: int) -> dict[str, Any]:
        """The kind's own metadata keys, ``usage`` among them."""


def float32_only(handle: ModelHandle, fmt: str) -> None:
    import torch

    dtypes = {p.dtype for p in handle.torch_module.parameters()}
    if dtypes - {torch.float32}:
        raise UnsupportedError(f"{handle.name} has {', '.join(sorted(str(d) for d in dtypes))} weights; the {fmt} "
                               "export starts from FP32", fix=f"export the FP32 model to {fmt}")


def weight_bytes(module: Any) -> int:
    return int(sum(p.numel() * p.element_size() for p in module.parameters()))
