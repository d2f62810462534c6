"""--device names → each runtime's own device, on hand-written provider and device lists (no accelerator needed)."""

from __future__ import annotations

import pytest

from studio.errors import UnsupportedError
from studio.runtime.devices import DeviceOption, match, ort_device_name, ort_options, ort_provider

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "AzureExecutionProvider", "CPUExecutionProvider"]


def test_ort_devices_are_the_listed_providers_cpu_first_and_azure_left_out():
    options = ort_options(GPU_BUILD, cpu_name="AMD EPYC")
    assert [(o.device, o.engine_name) for o in options] == [("cpu", "CPUExecutionProvider"),
                                                          ("tensorrt", "TensorrtExecutionProvider"),
                                                          ("cuda", "CUDAExecutionProvider")]
    assert options[0].name == "AMD EPYC" and all(o.runtime == "ort" for o in options)


def test_each_device_maps_to_its_provider():
    assert ort_provider(None, GPU_BUILD) == "CPUExecutionProvider"
    assert ort_provider("cuda", GPU_BUILD) == "CUDAExecutionProvider"
    assert ort_provider("TensorRT", GPU_BUILD) == "TensorrtExecutionProvider"
    assert ort_provider("coreml", ["CoreMLExecutionProvider", "CPUExecutionProvider"]) == "CoreMLExecutionProvider"
    assert ort_device_name("DmlExecutionProvider") == "dml"


def test_a_plugin_ep_is_offered_under_its_own_name():
    options = ort_options(["CPUExecutionProvider"], [("CPUExecutionProvider", "AMD CPU"),
                                                     ("ExampleNpuExecutionProvider", "Example NPU")])
    assert [(o.device, o.name) for o in options] == [("cpu", "CPU"), ("examplenpu", "Example NPU")]
    assert ort_provider("examplenpu", ["CPUExecutionProvider", "ExampleNpuExecutionProvider"]) == \
        "ExampleNpuExecutionProvider"


def test_a_missing_provider_is_refused_naming_what_is_there():
    with pytest.raises(UnsupportedError) as caught:
        ort_provider("cuda", ["AzureExecutionProvider", "CPUExecutionProvider"])
    text = str(caught.value)
    assert "\n" not in text and "device 'cuda' is not available to ort" in text and "(available: cpu)" in text
    assert "deploy-studio devices" in text


def test_a_family_name_picks_its_first_member_and_case_does_not_matter():
    torch_gpus = [DeviceOption("torch", "cpu", "CPU", "cpu"), DeviceOption("torch", "cuda:0", "GPU A", "cuda:0"),
                  DeviceOption("torch", "cuda:1", "GPU B", "cuda:1")]
    assert match("torch", "cuda", torch_gpus).device == "cuda:0"
    assert match("torch", "cuda:1", torch_gpus).name == "GPU B"
    openvino = [DeviceOption("openvino", "CPU", "CPU", "CPU"), DeviceOption("openvino", "GPU.0", "iGPU", "GPU.0")]
    assert match("openvino", "cpu", openvino).engine_name == "CPU"
    assert match("openvino", "gpu", openvino).engine_name == "GPU.0"
    with pytest.raises(UnsupportedError, match=r"device 'npu' is not available to openvino .*available: CPU, GPU.0"):
        match("openvino", "npu", openvino)
    with pytest.raises(UnsupportedError, match=r"available: cpu\)"):
        match("torch", "mps", torch_gpus[:1])
