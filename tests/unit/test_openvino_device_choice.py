"""OpenVINO device names: any case, a family name finds its first numbered device, a missing one is refused."""

from __future__ import annotations

import pytest

from studio.errors import UnsupportedError
from studio.runtime.openvino_backend import choose_device


def test_none_is_the_cpu_and_case_does_not_matter():
    assert choose_device(None, ["CPU"]) == "CPU"
    assert choose_device("cpu", ["CPU", "GPU"]) == "CPU"
    assert choose_device(" npu ", ["CPU", "NPU"]) == "NPU"


def test_a_family_name_finds_its_first_numbered_device():
    assert choose_device("gpu", ["CPU", "GPU.0", "GPU.1"]) == "GPU.0"
    assert choose_device("GPU.1", ["CPU", "GPU.0", "GPU.1"]) == "GPU.1"


def test_a_missing_device_is_refused_in_one_line_listing_the_available_ones():
    with pytest.raises(UnsupportedError) as caught:
        choose_device("gpu", ["CPU"])
    message = str(caught.value)
    assert "'gpu'" in message and "available: CPU" in message and "\n" not in message
    with pytest.raises(UnsupportedError, match="available: none"):
        choose_device(None, [])
