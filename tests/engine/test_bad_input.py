"""Bad input: one line naming the file and the fix, exit code 2, no traceback, nothing executed."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tests.engine.cli_helpers import run_cli


def _assert_clean_refusal(done, path: Path | str, *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("deploy-studio: error: ")
    assert str(path) in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    """A real, valid ONNX graph: one Conv on a 1×3×8×8 image."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], np.ones(6, np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], [weight])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nothing.onnx"
    _assert_clean_refusal(run_cli("info", path), path, "no such file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    _assert_clean_refusal(run_cli("info", path), path, "empty")


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    _assert_clean_refusal(run_cli("info", path), path)


def test_truncated_onnx(tmp_path, fall_onnx):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(fall_onnx.read_bytes()[: fall_onnx.stat().st_size // 3])
    _assert_clean_refusal(run_cli("info", path), path, "ONNX")


def test_unknown_extension(tmp_path):
    path = tmp_path / "model.xyz"
    path.write_bytes(b"data")
    _assert_clean_refusal(run_cli("info", path), path, "unknown model format")


def test_onnx_whose_input_the_studio_cannot_feed(tmp_path):
    """A graph taking int64 token ids loads (info works) but cannot be fed frames."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)], "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    path = tmp_path / "tokens.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert run_cli("info", path).returncode == 0
    from studio.media import bundled_image

    done = run_cli("predict", path, bundled_image("bus.jpg"))
    _assert_clean_refusal(done, "tokens", "does not take images")


def test_pt_that_is_not_a_model(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.zeros(3, 3)}, path)
    _assert_clean_refusal(run_cli("info", path), path, "not an Ultralytics checkpoint")


def test_image_that_is_not_an_image(tmp_path, tiny_onnx):
    image = tmp_path / "photo.jpg"
    image.write_text("this is text, not a JPEG")
    done = run_cli("predict", "zoo:yolov3-tiny-coco", image)
    _assert_clean_refusal(done, image, "not a readable image")


def test_video_that_is_not_a_video(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(np.random.default_rng(2).bytes(10_000))
    done = run_cli("predict", "zoo:yolov3-tiny-coco", video)
    _assert_clean_refusal(done, video, "video")


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    done = run_cli("--debug", "info", path)
    assert done.returncode == 2
    assert "Traceback" in done.stderr


class _Payload:
    """Unpickling this calls os.system, which would create the canary file."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def test_pickle_payload_inside_a_pt_is_refused_and_never_runs(tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(canary)}, path)
    assert zipfile.is_zipfile(path) and not canary.exists()
    done = run_cli("info", path)
    _assert_clean_refusal(done, path, "--trust")
    assert "system" in done.stderr  # names what it refused
    assert not canary.exists(), "the payload ran"


def test_bare_pickle_payload_is_refused_and_never_runs(tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "evil_legacy.pt"
    path.write_bytes(pickle.dumps(_Payload(canary)))
    done = run_cli("info", path)
    assert done.returncode == 2
    assert not canary.exists(), "the payload ran"


def test_trust_is_what_lets_a_payload_run(tmp_path):
    """The refusal above is the allow-list, not a broken file: with --trust the pickle does run."""
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(canary)}, path)
    run_cli("info", path, "--trust")
    assert canary.exists()


def test_allow_list_admits_network_modules_only():
    from studio.safe_pickle import _resolve_allowed

    assert _resolve_allowed("torch.nn.modules.conv.Conv2d") is torch.nn.Conv2d
    assert _resolve_allowed("ultralytics.nn.modules.conv.Conv") is not None
    assert _resolve_allowed("ultralytics.yolo.utils.IterableSimpleNamespace") is not None  # renamed module path
    for refused in ("os.system", "builtins.eval", "subprocess.Popen",
                    "torch.nn.modules.module.register_module_forward_hook", "ultralytics.nn.tasks.torch_safe_load",
                    "ultralytics.utils.downloads.attempt_download_asset"):
        assert _resolve_allowed(refused) is None, refused
