"""Early exit for text generation: a run-time scheme on the PyTorch decoder (see studio/lm/early_exit.py).

Nothing is trained: the model's own final norm and LM head score the hidden state at a few exit
layers, and a token leaves as soon as its top probability reaches the threshold. The optimize report
gives mean layers used, decode tokens/s against the full model and teacher-forced token agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studio.model import ModelHandle, Task
from studio.plugin_api import Kind, SettingsError, option
from studio.runtime.choice import RuntimeMode
from studio.tasks import TaskContext


@dataclass
class LmExitSettings:
    confidence: Literal["softmax", "saturation"] = option(
        "softmax", label="Confidence measure",
        help="softmax: top probability of the LM head at the exit (one head product per check); saturation: "
             "cosine between the layer's input and output hidden state (almost free)")
    threshold: float = option(0.9, label="Confidence to exit", min=0.3, max=0.9999,
                              help="A token leaves at the first exit layer whose top probability reaches this; "
                                   "higher = closer to the full model, fewer exits")
    exit_layers: str = option("", label="Exit layers (empty = ½, ⅔, ⅚ of the depth)",
                              help="Comma-separated numbers of layers run before a check, e.g. 15,20,25. Each check "
                                   "costs one LM-head product, so a few exits are better than many")


class LmEarlyExit:
    id = "early_exit.lm_decoding"
    title = "Early exit while decoding (language models)"
    kind = Kind.EARLY_EXIT
    Settings = LmExitSettings
    settings_version = 1

    def check(self, model: ModelHandle) -> list[str]:
        if model.task != Task.GENERATE:
            return ["it is for text-generating language models"]
        if model.torch_module is None or model.metadata.get("lm_runtime", "torch") != "torch":
            return ["it runs on the PyTorch decoder (this variant runs elsewhere)"]
        from studio.lm.early_exit import layout_problem

        problem = layout_problem(model.torch_module)
        return [problem] if problem else []

    def apply(self, model: ModelHandle, settings: LmExitSettings, ctx: TaskContext) -> ModelHandle:
        from studio.errors import UnsupportedError
        from studio.lm.early_exit import default_exits, parse_exits

        depth = len(model.torch_module.model.layers)
        text = settings.exit_layers.strip() or default_exits(depth)
        try:
            exits = parse_exits(text, depth)
        except UnsupportedError as exc:
            raise SettingsError(f"{self.id}: {exc.what}", fix=exc.fix) from None
        ctx.add_report({"exit_layers": exits, "confidence": settings.confidence, "threshold": settings.threshold,
                        "depth": depth,
                        "note": "skipped layers get key/value from the exiting state (state propagation)"})
        ctx.progress(1.0, "done")
        return model.replace(
            name=f"{model.name}-exit-{settings.confidence}{settings.threshold:g}",
            metadata={**model.metadata, "lm_runtime": "early_exit", "runtime_mode": RuntimeMode.LM_EARLY_EXIT.value,
                      "exit_confidence": settings.confidence,
                      "exit_threshold": str(settings.threshold), "exit_layers": ",".join(map(str, exits)),
                      "parent": model.name, "parent_sha256": model.provenance.sha256})
