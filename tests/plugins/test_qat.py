"""quantize.qat: simulated INT8 while fine-tuning, none in what is published; the published variant is the
studio's ordinary QDQ ONNX; the fine-tune is judged with the simulation on and never ends worse."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from studio.registry import default_registry
from studio.tasks import TaskContext


def _simulated(handle, frames=2):
    from plugins.quantize.common import calibration_inputs
    from plugins.quantize.fake_quant import FakeQuant

    module = copy.deepcopy(handle.torch_module).eval()
    fake = FakeQuant(module, per_channel=True, reduce_range=False, activations="uint8")
    fake.calibrate(calibration_inputs(handle, None, frames, None)[0])
    return module, fake


def test_fake_quant_changes_the_outputs_and_removing_it_restores_the_float_module(darknet_handle):
    import torch

    module, fake = _simulated(darknet_handle)
    keys = sorted(module.state_dict())
    x = torch.rand(1, 3, 416, 416)
    with torch.no_grad():
        exact = module(x)[0]
        fake.activate()
        assert fake.active()
        rounded = module(x)[0]
        assert not torch.equal(rounded, exact)  # the simulation is really in the forward pass
        torch.testing.assert_close(rounded, exact, atol=float(exact.abs().max()) * 0.2, rtol=0.2)
        fake.remove()
        assert not fake.active() and sorted(module.state_dict()) == keys  # no parametrization, no range buffers
        assert torch.equal(module(x)[0], exact)


def test_simulated_weights_are_onnxruntime_symmetric_int8_per_channel(darknet_handle):
    import torch

    _module, fake = _simulated(darknet_handle)
    fake.activate()
    layer = fake.layers[0]
    weight, original = layer.weight.detach(), layer.parametrizations.weight.original.detach()
    scale = original.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    steps = weight / scale
    assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= 127 + 1e-3
    original = layer.parametrizations.weight.original.requires_grad_(True)  # loaded models come frozen
    grad = torch.autograd.grad(layer.weight.sum(), original)[0]
    assert torch.equal(grad, torch.ones_like(grad))  # straight-through: rounding does not block the gradient
    fake.remove()


def test_check_refuses_a_model_without_a_torch_module(darknet_handle):
    from studio.runtime.onnx_export import ensure_onnx

    plugin = default_registry().get("quantize.qat")
    assert plugin.check(darknet_handle) == []
    graph_only = darknet_handle.replace(torch_module=None, onnx_path=ensure_onnx(darknet_handle))
    reasons = plugin.check(graph_only)
    assert len(reasons) == 1 and "\n" not in reasons[0] and "PyTorch module" in reasons[0]


@pytest.mark.slow
def test_qat_trains_under_simulation_and_publishes_a_plain_qdq_graph(darknet_handle, tmp_path, monkeypatch, bus_path,
                                                                      zidane_path):
    import shutil

    import onnx
    import onnxruntime as ort
    from torch.nn.utils import parametrize

    import studio.recovery.distill as distill
    import studio.train as engine

    monkeypatch.setattr(distill, "CHOOSING_FRAMES", 6)  # a short judge keeps the test quick
    seen = {}
    real_train = engine.train

    def spying_train(student, teacher, **kwargs):
        convs = [m for m in student.modules() if type(m).__name__.endswith("Conv2d")]
        seen["student"] = student
        seen["during"] = all(parametrize.is_parametrized(m, "weight") for m in convs)
        seen["hooks"] = sum(len(m._forward_pre_hooks) for m in convs)
        return real_train(student, teacher, **kwargs)

    monkeypatch.setattr(engine, "train", spying_train)
    plugin = default_registry().get("quantize.qat")
    frames = tmp_path / "frames"  # two images to train and calibrate on: reading the bundled videos takes longer
    frames.mkdir()
    for image in (bus_path, zidane_path):
        shutil.copy(image, frames)
    settings = plugin.Settings(recovery_steps=4, recovery_batch=2, recovery_lr=1e-4, recovery_frames=frames,
                               calibration=frames, samples=8, compare_plain=False)
    ctx = TaskContext(workdir=tmp_path / "work")
    variant = plugin.apply(darknet_handle, settings, ctx)

    assert seen["during"] and seen["hooks"] > 0  # fake quant was on while the trainer ran
    student = seen["student"]
    assert not any(parametrize.is_parametrized(m) for m in student.modules())  # and removed afterwards
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in student.modules())
    assert not any("_qat_" in key for key in student.state_dict())

    assert variant.torch_module is None and variant.name.endswith("-qat-int8")
    graph = onnx.load(str(variant.onnx_path))
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    session = ort.InferenceSession(str(variant.onnx_path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 416, 416), np.float32)})
    assert all(np.isfinite(o).all() for o in outputs)

    report = ctx.reports[-1]["qat"]
    training = report["training"]
    assert training["batchnorm"] == "frozen" and training["device"]["device"] == "cpu" and training["steps"] == 4
    # Judged with the simulation on, best weights kept: never worse than no fine-tune on the same seed.
    assert report["fidelity_simulated_after"] >= report["fidelity_simulated_before"]
    assert training["held_out_loss_after"] <= training["held_out_loss_before"]
