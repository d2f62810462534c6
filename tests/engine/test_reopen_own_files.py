"""The studio re-opens the ONNX files it writes (exports, ``optimize`` results) as the model they are: task,
labels, decoder and the exact pre-processing survive; third-party graphs open as before; bad metadata is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from studio.artifact_metadata import PREPROCESS_KEY, VERSION_KEY, artifact_metadata, write_onnx_metadata
from studio.errors import BadInputError
from studio.export import run_export
from studio.loaders import load_model
from studio.model import ImageInput, Resize, Task
from studio.optimize import run_optimize
from studio.recipe import Recipe, Step, save_recipe
from studio.runtime.predictor import make_predictor
from studio.sources import read_image
from tests.engine.cli_helpers import run_cli
from tests.unit.handles import handle


def _fp16_recipe(folder: Path) -> Path:
    path = folder / "fp16.toml"
    save_recipe(Recipe((Step("quantize.fp16", {}, 1),)), path)
    return path


def _optimized(model: str, folder: Path) -> Path:
    report = run_optimize(model, _fp16_recipe(folder), folder / "out", runs=2, fidelity_frames_count=2)
    return Path(report["output"])


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _tiny_conv(path: Path, *, external: bool = False) -> Path:
    """A third-party graph: one Conv + Relu on a 1×3×32×32 image, no metadata at all."""
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path), save_as_external_data=external, location=f"{path.name}.data", size_threshold=0)
    return path


def test_optimized_classifier_reopens_as_the_same_classifier(tmp_path, effnet_handle, bus_path):
    published = _optimized("zoo:efficientnet-lite0", tmp_path)
    reopened = load_model(published)
    assert reopened.task == Task.CLASSIFY and reopened.labels == effnet_handle.labels
    assert reopened.image_input == effnet_handle.image_input  # centre crop, mean 127, scale 1/128
    assert reopened.decoder == effnet_handle.decoder == "classify-logits"
    assert json.loads(_props(published)["deploy_studio.recipe"])["steps"][0]["plugin"] == "quantize.fp16"
    frame = read_image(bus_path)
    source_top = make_predictor(effnet_handle, "ort")(frame).result.class_ids[0]
    assert make_predictor(reopened, "ort")(frame).result.class_ids[0] == source_top
    from studio.runtime.onnx_export import ensure_onnx

    assert VERSION_KEY not in _props(ensure_onnx(effnet_handle))  # only the published copy was written to


@pytest.fixture(scope="module")
def darknet_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("darknet")
    report = run_export("zoo:yolov3-tiny-coco", ["onnx"], folder / "export")
    return Path(report["exports"][0]["path"]), _optimized("zoo:yolov3-tiny-coco", folder)


@pytest.mark.parametrize("which", ["export", "optimize"])
def test_darknet_detector_still_stretches_when_reopened(darknet_files, darknet_handle, which):
    reopened = load_model(darknet_files[("export", "optimize").index(which)])
    assert darknet_handle.image_input.resize == Resize.STRETCH
    assert reopened.image_input == darknet_handle.image_input
    assert reopened.task == Task.DETECT and reopened.labels == darknet_handle.labels
    assert reopened.decoder == "darknet"  # its rows, not an Ultralytics head's


def test_reopened_darknet_export_finds_what_the_source_finds(darknet_files, darknet_handle, bus_path):
    frame = read_image(bus_path)
    source = make_predictor(darknet_handle, "ort")(frame).result
    exported = make_predictor(load_model(darknet_files[0]), "ort")(frame).result
    assert len(source) > 0 and sorted(source.class_ids.tolist()) == sorted(exported.class_ids.tolist())
    assert np.abs(source.boxes - exported.boxes).max() < 1.0  # pixels


def test_third_party_graph_without_metadata_opens_as_before(tmp_path):
    handle = load_model(_tiny_conv(tmp_path / "tiny.onnx"))
    assert handle.task == Task.TENSOR and handle.decoder == "tensor" and handle.image_input is None
    assert handle.format == "onnx" and handle.labels == () and "generic tensor model" in handle.provenance.note


def test_metadata_is_written_beside_external_weights_without_breaking_them(tmp_path):
    import onnxruntime as ort

    path = _tiny_conv(tmp_path / "ext.onnx", external=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    before = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    write_onnx_metadata(path, {"note": "kept", "author": "someone"})
    write_onnx_metadata(path, {"author": "Deploy Studio"})
    after = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    assert np.array_equal(before, after)
    assert _props(path) == {"note": "kept", "author": "Deploy Studio"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", "ext.onnx.data"]  # nothing staged left


def _with_own_metadata(tmp_path: Path, **changes: str) -> Path:
    """The tiny graph carrying the metadata the studio writes for a tensor model that takes stretched images."""
    path = _tiny_conv(tmp_path / "own.onnx")
    meta = artifact_metadata(handle("tiny", Task.TENSOR, decoder="tensor", labels=(),
                                    image_input=ImageInput((32, 32), resize=Resize.STRETCH, mean=10.0)))
    write_onnx_metadata(path, meta | changes)
    return path


def test_own_metadata_on_a_small_graph_gives_its_preprocessing(tmp_path):
    handle = load_model(_with_own_metadata(tmp_path))
    assert handle.image_input is not None
    assert handle.image_input.resize == Resize.STRETCH and handle.image_input.mean == 10.0
    assert handle.image_input.size == (32, 32) and not handle.image_input.dynamic


@pytest.mark.parametrize(("changes", "words"), [
    ({PREPROCESS_KEY: "{not json"}, ("deploy_studio.preprocess", "not JSON")),
    ({PREPROCESS_KEY: json.dumps({"size": [32, 32], "resize": "squash"})}, ("resize 'squash'",)),
    ({PREPROCESS_KEY: json.dumps({"size": [64, 64]})}, ("fixed at [32, 32]",)),
    ({"deploy_studio.decoder": "darknet"}, ("decoder 'darknet'",)),
])
def test_malformed_own_metadata_is_refused_in_one_line(tmp_path, changes, words):
    path = _with_own_metadata(tmp_path, **changes)
    with pytest.raises(BadInputError) as info:
        load_model(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text and all(word in text for word in words), text


def test_malformed_preprocess_exits_2_from_the_cli(tmp_path):
    path = _with_own_metadata(tmp_path, **{PREPROCESS_KEY: "[1, 2]"})
    done = run_cli("info", path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and "not an object" in lines[0], done.stderr


def test_early_exit_segments_carry_the_metadata_and_open_as_segments(tmp_path):
    recipe = tmp_path / "exit.toml"
    save_recipe(Recipe((Step("early_exit.classifier", {"steps": 5}, 1),)), recipe)
    report = run_optimize("zoo:efficientnet-lite0", recipe, tmp_path / "out", runs=2, fidelity_frames_count=2)
    segments = [Path(f) for f in report["files"]]
    assert len(segments) > 1
    for path in segments:
        assert _props(path)["deploy_studio.runtime_mode"] == "early_exit" and PREPROCESS_KEY in _props(path)
        # One segment alone is not the classifier (its outputs are features and an exit's logits).
        segment = load_model(path)
        assert segment.task == Task.TENSOR and "early-exit" in segment.provenance.note


@pytest.mark.parametrize(("softmax", "decoder"), [(True, "classify-probs"), (False, "classify-logits")])
def test_a_classifier_without_a_recorded_decoder_is_read_from_its_last_node(tmp_path, softmax, decoder):
    """Files written before the decoder was recorded: probabilities when the graph ends in Softmax, else logits."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"])]
    nodes += [helper.make_node("Softmax", ["f"], ["s"]), helper.make_node("Identity", ["s"], ["y"])] if softmax \
        else [helper.make_node("Identity", ["f"], ["y"])]
    graph = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "cls.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    meta = artifact_metadata(handle("cls", Task.CLASSIFY, decoder="unused", labels=("r", "g", "b"),
                                    image_input=ImageInput((16, 16), resize=Resize.CENTER_CROP)))
    write_onnx_metadata(path, {k: v for k, v in meta.items() if k != "deploy_studio.decoder"})
    reopened = load_model(path)
    assert reopened.task == Task.CLASSIFY and reopened.labels == ("r", "g", "b") and reopened.decoder == decoder
