"""--runtime and --device in predict, bench and optimize: every result names what really ran; a device that is
not here is refused in one line that lists what is, never replaced by the CPU. GPU paths run where a GPU is."""

from __future__ import annotations

import pytest

from tests.engine.cli_helpers import run_cli, run_json


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def test_devices_lists_every_runtime_with_the_cpu_first():
    rows = run_json("devices")
    runtimes = [row["runtime"] for row in rows]
    assert {"ort", "torch", "openvino", "litert"} <= set(runtimes)
    first = {runtime: next(row for row in rows if row["runtime"] == runtime) for runtime in set(runtimes)}
    assert first["ort"]["engine_name"] == "CPUExecutionProvider" and first["torch"]["device"] == "cpu"
    assert first["openvino"]["device"] == "CPU"
    if _cuda():
        import torch

        assert {"device": "cuda:0", "name": torch.cuda.get_device_name(0)}.items() <= \
            next(row for row in rows if row["runtime"] == "torch" and row["device"] == "cuda:0").items()
    else:
        assert not any(row["device"].startswith("cuda") for row in rows if row["runtime"] == "torch")


def test_predict_on_ort_cpu_names_the_cpu_provider(bus_path):
    report = run_json("predict", "zoo:yolov8s-fall", bus_path, "--runtime", "ort", "--device", "cpu")
    assert report["runtime"] == "ort" and report["execution_provider"] == "CPUExecutionProvider"
    assert report["device"] == "cpu" and report["device_name"]
    assert report["runtime_detail"]["execution_provider"] == "CPUExecutionProvider"


def test_predict_on_torch_names_its_device(bus_path):
    report = run_json("predict", "zoo:yolov8s-fall", bus_path, "--runtime", "torch", "--device", "cpu")
    assert report["runtime"] == "torch" and report["device"] == "cpu" and report["execution_provider"] is None
    assert report["runtime_detail"]["runtime"].startswith("torch ")


def test_bench_on_ort_cpu_names_the_cpu_provider():
    report = run_json("bench", "zoo:yolov8s-fall", "--runtime", "ort", "--device", "cpu", "--runs", "2",
                      "--warmup", "1", "--imgsz", "320")
    detail = report["method"]["runtime"]
    assert detail["execution_provider"] == "CPUExecutionProvider" and detail["device"] == "cpu"


def _refused_in_one_line(done, runtime: str) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"device 'cuda' is not available to {runtime} on this machine (available: cpu" in lines[0]
    return lines[0]


@pytest.mark.skipif("CUDAExecutionProvider" in _ort_providers(), reason="this onnxruntime has a CUDA provider")
def test_a_missing_ort_provider_is_refused_in_one_line(bus_path):
    _refused_in_one_line(run_cli("predict", "zoo:yolov8s-fall", bus_path, "--runtime", "ort", "--device", "cuda"),
                         "ort")
    _refused_in_one_line(run_cli("bench", "zoo:yolov8s-fall", "--runtime", "ort", "--device", "cuda"), "ort")


@pytest.mark.skipif(_cuda(), reason="torch sees a CUDA GPU here: the refusal needs a machine without one")
def test_torch_cuda_without_a_gpu_is_refused_in_one_line(bus_path, tmp_path):
    _refused_in_one_line(run_cli("predict", "zoo:yolov8s-fall", bus_path, "--runtime", "torch", "--device", "cuda"),
                         "torch")
    _refused_in_one_line(run_cli("bench", "zoo:yolov8s-fall", "--runtime", "torch", "--device", "cuda"), "torch")
    _refused_in_one_line(run_cli("optimize", "zoo:yolov8s-fall", "--recipe", tmp_path / "any.toml",
                                 "-o", tmp_path / "out", "--device", "cuda"), "torch")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU here (torch.cuda.is_available() is False)")
def test_a_torch_predictor_on_cuda_names_the_gpu_and_leaves_the_handle_on_the_cpu(fall_handle, bikes_frames):
    import torch

    from studio.runtime.predictor import make_predictor

    predictor = make_predictor(fall_handle, "torch", device="cuda")
    prediction = predictor(bikes_frames[0])
    detail = predictor.backend.describe()
    assert detail["device"] == "cuda:0" and detail["device_name"] == torch.cuda.get_device_name(0)
    assert next(fall_handle.torch_module.parameters()).device.type == "cpu"  # a copy moved, not the shared module
    on_cpu = make_predictor(fall_handle, "torch", device="cpu")(bikes_frames[0])
    assert len(prediction.result.as_list()) == len(on_cpu.result.as_list())


@pytest.mark.skipif("CUDAExecutionProvider" not in _ort_providers(),
                    reason="this onnxruntime build has no CUDA provider (the PyPI 'onnxruntime' wheel is CPU only)")
def test_ort_on_cuda_runs_on_the_cuda_provider(fall_handle, bikes_frames):
    from studio.runtime.predictor import make_predictor

    predictor = make_predictor(fall_handle, "ort", device="cuda")
    predictor(bikes_frames[0])
    assert predictor.backend.describe()["execution_provider"] == "CUDAExecutionProvider"


def test_optimize_device_sets_the_training_device_of_every_training_step(tmp_path):
    from studio.cli import _recipe_on_device
    from studio.recipe import load_recipe

    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[steps]]\nplugin = "prune.channels"\nsettings = { recovery_device = "auto" }\n\n'
                      '[[steps]]\nplugin = "early_exit.classifier"\n\n[[steps]]\nplugin = "quantize.fp16"\n')
    rewritten, workdir = _recipe_on_device(recipe, "cpu")
    steps = load_recipe(rewritten).steps
    assert steps[0].settings["recovery_device"] == "cpu" and steps[1].settings["device"] == "cpu"
    assert "device" not in steps[2].settings and "recovery_device" not in steps[2].settings
    assert recipe.read_text().count("auto") == 1  # the user's file is left as it was
    workdir.cleanup()


def test_optimize_times_and_judges_in_the_runtime_asked_for(tmp_path):
    recipe = tmp_path / "fp16.toml"
    recipe.write_text('[[steps]]\nplugin = "quantize.fp16"\n')
    report = run_json("optimize", "zoo:efficientnet-lite0", "--recipe", str(recipe), "-o", str(tmp_path / "out"),
                      "--runtime", "openvino", "--runs", "3", "--fidelity-frames", "3", timeout=600)
    assert report["method"]["runtime"]["runtime"].startswith("openvino") and report["method"]["runtime"]["device"]
    assert report["method"]["latency"].startswith("openvino") and report["fidelity"]["value"] >= 0.66
    refused = run_cli("optimize", "zoo:efficientnet-lite0", "--recipe", str(recipe), "-o", str(tmp_path / "x"),
                      "--runtime", "litert")
    assert refused.returncode == 2 and "litert" in refused.stderr
