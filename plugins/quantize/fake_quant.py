"""Simulated INT8 inside a PyTorch module: what onnxruntime's static QDQ quantization will do, so a
fine-tune can learn weights that survive it (quantization-aware training).

- Weights of every Conv/Linear: per-channel (or per-tensor) symmetric INT8, as onnxruntime quantizes
  them (range ±127, ±64 with ``reduce_range``), recomputed from the weights at every forward so the
  grid follows training. A parametrization, so the float weights stay the trained parameters and
  the gradient passes straight through the rounding (``torch.fake_quantize_*`` is a straight-through
  estimator inside the range).
- Activations: per-tensor asymmetric INT8/UINT8 with the min/max range measured on calibration inputs
  (onnxruntime's MinMax calibration), fixed while training, at the tensors the QDQ graph quantizes
  around its Convs: every Conv/Linear input, and every Conv output as the exported graph has it —
  after BatchNorm (folded into the Conv there), or straight out of a Conv/Linear with a bias (the
  detection heads: their raw outputs are where post-training INT8 loses most, and nothing else sees
  that rounding).

Why per-channel on the unfolded weights is exact: the exported graph folds BatchNorm into the Conv,
which multiplies each output channel by a constant; a per-channel symmetric grid scales with its
channel, so the rounded integers are the same. With BatchNorm frozen during the fine-tune that
constant is the one the export folds. Per-tensor weights are only approximated (the folded weights'
shared scale differs), which the caller reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALE = "_qat_{}_scale"  # buffers on each layer ({} is input or output), so they follow it to the device
ZERO = "_qat_{}_zero_point"


def weight_range(reduce_range: bool) -> int:
    """onnxruntime's symmetric INT8 weight range: ±127, or ±64 with 7-bit weights."""
    return 64 if reduce_range else 127


def activation_range(activations: str) -> tuple[int, int]:
    return (0, 255) if activations == "uint8" else (-128, 127)


def _weight_quantizer(per_channel: bool, limit: int) -> Any:
    import torch

    class WeightFakeQuant(torch.nn.Module):
        def forward(self, weight: Any) -> Any:
            dims = tuple(range(1, weight.dim()))
            peak = weight.detach().abs().amax(dim=dims) if per_channel else weight.detach().abs().amax().reshape(1)
            scale = (peak / limit).clamp_min(torch.finfo(torch.float32).tiny).float()
            if not per_channel:
                scale = scale.expand(weight.shape[0]).contiguous()
            zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
            return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -limit, limit)

    return WeightFakeQuant()


class FakeQuant:
    """Simulated INT8 on the Conv/Linear layers of ``module`` (in place), calibrated then removable."""

    def __init__(self, module: Any, *, per_channel: bool, reduce_range: bool, activations: str):
        import torch

        self.module = module
        self.layers = [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        biased = [m for m in self.layers if m.bias is not None]
        # (layer, "input" | "output"): every activation tensor the simulation rounds
        self.points = [(m, "input") for m in self.layers] + [(m, "output") for m in norms + biased]
        self.qmin, self.qmax = activation_range(activations)
        self.lows: dict[int, float] = {}
        self.highs: dict[int, float] = {}
        self.hooks: list[Any] = []
        self.weights = (per_channel, weight_range(reduce_range))

    def calibrate(self, inputs: list[np.ndarray], ctx: Any = None) -> None:
        """Measure each point's range on ``inputs`` (pre-processed like the INT8 calibration)."""
        import torch

        hooks = [self._hook(layer, where, self._observer(index)) for index, (layer, where) in enumerate(self.points)]
        self.module.eval()
        try:
            with torch.no_grad():
                for count, tensor in enumerate(inputs):
                    if ctx is not None:
                        ctx.progress(count / len(inputs), f"measuring INT8 ranges {count + 1}/{len(inputs)}")
                    self.module(torch.from_numpy(np.ascontiguousarray(tensor)))
        finally:
            for hook in hooks:
                hook.remove()

    @staticmethod
    def _hook(layer: Any, where: str, change: Any) -> Any:
        """A hook that passes ``where``'s tensor through ``change(layer, tensor) -> tensor or None``."""
        if where == "input":
            def before(mod: Any, args: tuple) -> tuple | None:
                value = change(mod, args[0], where)
                return None if value is None else (value, *args[1:])

            return layer.register_forward_pre_hook(before)
        return layer.register_forward_hook(lambda mod, _args, output: change(mod, output, where))

    def _observer(self, index: int) -> Any:
        def observe(_layer: Any, value: Any, _where: str) -> None:
            self.lows[index] = min(self.lows.get(index, 0.0), float(value.min()))  # zero always representable
            self.highs[index] = max(self.highs.get(index, 0.0), float(value.max()))

        return observe

    def activate(self) -> None:
        """Weights and activations pass through simulated INT8 from now on."""
        import torch
        from torch.nn.utils import parametrize

        per_channel, limit = self.weights
        for weighted in self.layers:
            parametrize.register_parametrization(weighted, "weight", _weight_quantizer(per_channel, limit))
        for index, (layer, where) in enumerate(self.points):
            low, high = self.lows.get(index, 0.0), self.highs.get(index, 0.0)
            scale = max((high - low) / (self.qmax - self.qmin), float(np.finfo(np.float32).tiny))
            zero = int(np.clip(round(self.qmin - low / scale), self.qmin, self.qmax))
            layer.register_buffer(SCALE.format(where), torch.tensor(scale, dtype=torch.float32))
            layer.register_buffer(ZERO.format(where), torch.tensor(zero, dtype=torch.int32))
            self.hooks.append(self._hook(layer, where, self._quantize))

    def _quantize(self, layer: Any, value: Any, where: str) -> Any:
        import torch

        # float32 here: under CUDA autocast a tensor may be bf16/fp16
        quantized = torch.fake_quantize_per_tensor_affine(value.float(), getattr(layer, SCALE.format(where)),
                                                          getattr(layer, ZERO.format(where)), self.qmin, self.qmax)
        return quantized.to(value.dtype)

    def remove(self) -> None:
        """Back to a plain float module holding the weights trained under quantization noise."""
        from torch.nn.utils import parametrize

        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        for weighted in self.layers:
            if parametrize.is_parametrized(weighted, "weight"):
                parametrize.remove_parametrizations(weighted, "weight", leave_parametrized=False)
        for layer, where in self.points:
            for name in (SCALE.format(where), ZERO.format(where)):
                layer._buffers.pop(name, None)

    def active(self) -> bool:
        from torch.nn.utils import parametrize

        return any(parametrize.is_parametrized(layer, "weight") for layer in self.layers) or bool(self.hooks)

    def summary(self) -> dict[str, Any]:
        per_channel, limit = self.weights
        outputs = sum(where == "output" for _, where in self.points)
        return {"layers": len(self.layers), "weights": f"{'per-channel' if per_channel else 'per-tensor'} "
                f"symmetric ±{limit}", "activations": f"{len(self.points) - outputs} layer inputs and {outputs} "
                f"Conv/BatchNorm outputs, per-tensor asymmetric [{self.qmin}, {self.qmax}], MinMax range from "
                "the calibration frames"}
