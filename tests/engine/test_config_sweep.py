"""Every architecture Ultralytics ships, ONNX files of other exporters and Hugging Face folders of
architectures transformers lacks: each one works, or is refused in ONE line that names the file and
says what is unsupported — never "internal error", never a traceback.

Every ``cfg/models/**.yaml`` of the installed Ultralytics is built at random weights at 64×64 (the
loader reads a yaml's ``imgsz``) and run through ``info`` and ``predict`` (PyTorch runtime). Exporting
each to ONNX would take minutes, so a representative subset — one per head family: detect, segment,
pose, OBB, classify, the NMS-free YOLO26/YOLOv10 heads, YOLOE — is exported with Ultralytics' own exporter,
as a user would, and opened as ONNX. Commands run in-process (``studio.cli.main``): a subprocess
per call would cost a second of start-up each.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from studio.cli import main

pytestmark = pytest.mark.slow

SIZE = 64  # the smallest input every shipped head takes (P6 models have stride 64)


def _config_root() -> Path:
    spec = importlib.util.find_spec("ultralytics")  # finds the package without importing it
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


CONFIGS = sorted(_config_root().rglob("*.yaml"))

# Heads the studio refuses by name, and a phrase their one line must contain (matched on the file name).
REFUSED = {"world": "YOLO-World", "yoloe-": "YOLOE", "-depth": "depth-estimation",
           "-sem": "semantic-segmentation"}


def _refusal_phrase(name: str) -> str | None:
    return next((phrase for key, phrase in REFUSED.items() if key in name), None)


def cli(*argv: object) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_works_or_refused(result: tuple[int, str, str], name: str, phrase: str | None = None) -> int:
    """Exit 0, or exit 2 with exactly one stderr line naming ``name``; returns the exit code."""
    code, _, err = result
    assert "internal error" not in err and "Traceback" not in err, err
    if phrase is not None:
        assert code == 2, (code, err)
    if code == 0:
        return code
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith("deploy-studio: error: ") and name in lines[0], lines[0]
    assert phrase is None or phrase in lines[0], lines[0]
    return code


@pytest.fixture(scope="module")
def bus() -> Path:
    from studio.media import bundled_image

    return bundled_image("bus.jpg")


def _small_copy(config: Path, folder: Path) -> Path:
    """The yaml as shipped, with an input size the sweep can afford."""
    copy = folder / config.name
    copy.write_text(config.read_text() + f"\nimgsz: {SIZE}\n")
    return copy


@pytest.mark.parametrize("config", CONFIGS, ids=[c.relative_to(_config_root()).as_posix() for c in CONFIGS])
def test_every_shipped_yaml_runs_or_is_refused_in_one_line(config, tmp_path, bus):
    path = _small_copy(config, tmp_path)
    phrase = _refusal_phrase(config.stem)
    assert_works_or_refused(cli("info", path), config.stem, phrase)
    predicted = cli("predict", path, bus, "--runtime", "torch", "--threads", "1", "--conf", "0.001", "--json")
    code = assert_works_or_refused(predicted, config.stem, phrase)
    if code == 0:
        assert json.loads(predicted[1])["frames"][0]["input_shape"][2:] == [SIZE, SIZE]


HAND_WRITTEN = {  # a yaml a user might bring → its one line
    "fork-module": ("[[-1, 1, Conv, [16, 3, 2]], [-1, 1, FancyAttentionBlock, [16]]]", "[[[1], 1, Detect, [nc]]]",
                    "'FancyAttentionBlock', which Ultralytics"),
    "torch-typo": ("[[-1, 1, nn.Conv2dd, [3, 16, 3]]]", "[[-1, 1, Classify, [nc]]]", "which torch.nn does not"),
    "unknown-torchvision": ("[[-1, 1, TorchVision, [512, resnet9000, DEFAULT, True, 2]]]", "[[-1, 1, Classify, [nc]]]",
                            "cannot build"),
    "dangling-from": ("[[-1, 1, Conv, [16, 3, 2]]]", "[[[5, 9], 1, Detect, [nc]]]", "cannot build"),
    "custom-head": ("[[-1, 1, Conv, [16, 3, 2]]]", "[[-1, 1, nn.Identity, []]]", "head 'Identity'"),
}


@pytest.mark.parametrize("name", list(HAND_WRITTEN))
def test_a_yaml_ultralytics_cannot_build_is_one_line(name, tmp_path):
    backbone, head, phrase = HAND_WRITTEN[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"nc: 2\nbackbone: {backbone}\nhead: {head}\n")
    assert_works_or_refused(cli("info", path), name, phrase)


def test_the_sweep_covers_every_family():
    """The glob must find Ultralytics' files (an empty sweep passes vacuously)."""
    stems = {c.stem for c in CONFIGS}
    for expected in ("yolov3", "yolov5", "yolov6", "yolov8", "yolov9c", "yolov10n", "yolo11", "yolo12", "yolo26",
                     "rtdetr-l", "yolov8-world", "yoloe-11", "yolo26-depth", "yolo26-sem", "yolo11-cls-resnet18"):
        assert expected in stems, expected


# --- ONNX files written by Ultralytics' own exporter (one per head family) ---------------------------

EXPORTS = {  # yaml stem → extra export arguments
    "yolo11": {}, "yolov8-seg": {}, "yolo11-pose": {}, "yolo11-obb": {}, "yolo11-cls": {},
    "yolo26": {"end2end": True}, "yolo26-pose": {"end2end": True}, "yolov10n": {"end2end": True},
    "yoloe-11": {},  # its prompt embeddings are baked in: the export is a plain detector
}


@pytest.fixture(scope="module")
def ultralytics_exports(tmp_path_factory) -> dict[str, Path]:
    import torch
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("ultralytics-exports")
    paths = {}
    # Ultralytics writes a yaml-built model's export into the working folder.
    with contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for stem, extra in EXPORTS.items():
            torch.manual_seed(0)
            produced = Path(YOLO(f"{stem}.yaml").export(format="onnx", imgsz=SIZE, **extra))
            paths[stem] = produced.rename(folder / f"{stem}{'-e2e' if extra else ''}.onnx")
    return paths


@pytest.mark.parametrize("stem", list(EXPORTS))
def test_ultralytics_exported_onnx_runs(ultralytics_exports, stem, bus):
    path = ultralytics_exports[stem]
    assert cli("info", path)[0] == 0
    code = assert_works_or_refused(cli("predict", path, bus, "--conf", "0.001", "--threads", "1"), path.stem)
    assert code == 0  # every head family decodes, OBB included


def test_nms_free_exports_are_decoded_as_rows(ultralytics_exports):
    """YOLO26-pose end2end writes [1, rows, 57]: its metadata, not its shape, says the rows are boxes."""
    from studio.loaders import load_model

    assert load_model(ultralytics_exports["yolo26-pose"]).decoder == "yolo-end2end"
    assert load_model(ultralytics_exports["yolo11-pose"]).decoder == "yolo"


def test_export_of_a_shipped_yaml_to_onnx(tmp_path):
    config = next(c for c in CONFIGS if c.stem == "yolo26-pose")
    code, _, err = cli("export", _small_copy(config, tmp_path), "--to", "onnx", "-o", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "yolo26-pose.onnx").is_file()


def test_optimize_of_a_shipped_yaml_with_a_trivial_recipe(tmp_path):
    config = next(c for c in CONFIGS if c.stem == "yolo11-cls")
    recipe = tmp_path / "fp16.toml"
    recipe.write_text('[[steps]]\nplugin = "quantize.fp16"\n')
    code, _, err = cli("optimize", _small_copy(config, tmp_path), "--recipe", recipe, "-o", tmp_path / "out",
                       "--runs", "2", "--fidelity-frames", "2")
    assert code == 0, err


# --- Checkpoints of heads the studio does not run ----------------------------------------------------

@pytest.mark.parametrize(("model_class", "config", "phrase"), [
    ("DepthModel", "yolo26-depth.yaml", "depth-estimation"),  # RT-DETR runs: tests/engine/test_rtdetr.py
    ("SemanticSegmentationModel", "yolo26-sem.yaml", "semantic-segmentation"),
])
def test_checkpoint_of_an_unsupported_head_is_refused_by_name(tmp_path, model_class, config, phrase):
    import torch
    from ultralytics.nn import tasks

    with contextlib.redirect_stdout(io.StringIO()):
        module = getattr(tasks, model_class)(config, verbose=False)
    path = tmp_path / f"{Path(config).stem}.pt"
    torch.save({"model": module.half()}, path)  # Ultralytics' checkpoints store the model in half precision
    assert_works_or_refused(cli("info", path), path.name, phrase)


# --- ONNX files of other exporters, built small with onnx.helper --------------------------------------

def _save(graph, path: Path, opset: int = 17, domains: tuple[str, ...] = (), metadata: dict | None = None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    *(helper.make_opsetid(d, 1) for d in domains)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _constant(name: str, array: np.ndarray):
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array.astype(np.float32), name))


def paddle_constant_weights(path: Path) -> Path:
    """Paddle2ONNX style: weights in Constant nodes (no initializers), every input dimension dynamic."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes = [_constant("w", rng.standard_normal((8, 3, 3, 3))), _constant("b", np.zeros(8)),
             helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "paddle",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, "H", "W"])])
    return _save(graph, path, opset=11)


def paddle_detector(path: Path) -> Path:
    """A Paddle detector's two inputs (image, scale_factor) with -1 dimensions."""
    from onnx import TensorProto, helper

    nodes = [_constant("w", np.random.default_rng(1).standard_normal((6, 3, 1, 1))),
             helper.make_node("Conv", ["image", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Mul", ["f", "scale_factor"], ["bbox"])]
    graph = helper.make_graph(nodes, "ppyoloe",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [-1, 3, -1, -1]),
                               helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, [-1, 6])],
                              [helper.make_tensor_value_info("bbox", TensorProto.FLOAT, [-1, 6])])
    return _save(graph, path, opset=11)


def tf2onnx_nhwc(path: Path) -> Path:
    """tf2onnx style: an NHWC input with unk__ dimensions, a Transpose to NCHW, ':0' tensor names."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv/w"),
               numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc/w")]
    nodes = [helper.make_node("Transpose", ["input_1:0"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "conv/w"], ["c"], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc/w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["Identity:0"])]
    graph = helper.make_graph(nodes, "tf2onnx",
                              [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["unk__6", 32, 32, 3])],
                              [helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT, ["unk__7", 5])], weights)
    return _save(graph, path, opset=13)


def _float_image_model(path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "m")]
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "m"], ["out"])]
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], weights)
    return _save(graph, path)


def ort_dynamic_uint8(path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = _float_image_model(path.with_name("float-for-dynamic.onnx"))
    quantize_dynamic(str(source), str(path), weight_type=QuantType.QUInt8)
    return path


def ort_static_qdq(path: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self):
            rngs = [np.random.default_rng(i) for i in range(2)]
            self.feeds = iter([{"images": rng.random((1, 3, 32, 32), np.float32)} for rng in rngs])

        def get_next(self):
            return next(self.feeds, None)

    source = _float_image_model(path.with_name("float-for-qdq.onnx"))
    quantize_static(str(source), str(path), Frames(), quant_format=QuantFormat.QDQ)
    return path


def microsoft_contrib_ops(path: Path) -> Path:
    """What onnxruntime's transformer optimiser writes: com.microsoft operators on a token input."""
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(4).standard_normal((10, 8)).astype(np.float32), "emb")
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
             helper.make_node("FastGelu", ["h"], ["y"], domain="com.microsoft")]
    graph = helper.make_graph(nodes, "ms",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", 8])],
                              [table])
    return _save(graph, path, domains=("com.microsoft",))


def sklearn_zipmap(path: Path) -> Path:
    """skl2onnx style: an ai.onnx.ml operator and a sequence-of-maps output."""
    from onnx import TensorProto, helper

    probabilities = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    nodes = [helper.make_node("ZipMap", ["X"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2])]
    graph = helper.make_graph(nodes, "skl", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
                              [helper.make_value_info("probabilities", probabilities)])
    return _save(graph, path, domains=("ai.onnx.ml",))


def fp16_io(path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Conv", ["images", "w"], ["y"])], "half",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT16, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4, 32, 32])],
                              [numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float16), "w")])
    return _save(graph, path)


def _with_ultralytics_metadata(path: Path, output_shape: list[int], **fields: str) -> Path:
    """A graph carrying an Ultralytics export's metadata (a forged file, or another head's export)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Expand", ["f", "shape"], ["output0"])]
    graph = helper.make_graph(nodes, "meta",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
                              [numpy_helper.from_array(np.array(output_shape, np.int64), "shape")])
    metadata = {"author": "Ultralytics", "names": "{0: 'a', 1: 'b'}", "imgsz": "[64, 64]", "stride": "32", **fields}
    return _save(graph, path, metadata=metadata)


FOREIGN_ONNX = {  # file name → (builder, phrase its refusal line must contain, or None where it may run)
    "paddle-constants.onnx": (paddle_constant_weights, None),
    "paddle-detector.onnx": (paddle_detector, None),
    "tf2onnx-nhwc.onnx": (tf2onnx_nhwc, None),
    "ort-dynamic-uint8.onnx": (ort_dynamic_uint8, None),
    "ort-static-qdq.onnx": (ort_static_qdq, None),
    "ms-contrib.onnx": (microsoft_contrib_ops, None),
    "sklearn-zipmap.onnx": (sklearn_zipmap, None),
    "fp16-io.onnx": (fp16_io, None),
    "rtdetr-export.onnx": (lambda p: _with_ultralytics_metadata(p, [1, 300, 3], task="detect", head="RTDETRDecoder"),
                           "not that head's layout"),  # decoded as RT-DETR rows [1, 300, 6]: not refused by name
    "depth-export.onnx": (lambda p: _with_ultralytics_metadata(p, [1, 1, 64, 64], task="depth", head="Depth"),
                          "depth-estimation"),
    "semantic-export.onnx": (lambda p: _with_ultralytics_metadata(p, [1, 64, 64], task="semantic"),
                             "semantic-segmentation"),
    "forged-detect.onnx": (lambda p: _with_ultralytics_metadata(p, [1, 3], task="detect"), "not that head's layout"),
}


@pytest.mark.parametrize("name", list(FOREIGN_ONNX))
def test_onnx_of_other_exporters_runs_or_is_refused_in_one_line(name, tmp_path, bus):
    builder, phrase = FOREIGN_ONNX[name]
    path = builder(tmp_path / name)
    stem = Path(name).stem
    assert_works_or_refused(cli("info", path), stem, phrase)
    assert_works_or_refused(cli("predict", path, bus, "--threads", "1"), stem, phrase)
    assert_works_or_refused(cli("export", path, "--to", "onnx", "-o", tmp_path / "out"), stem, phrase)
    if phrase is None:  # a tensor model: bench feeds tensors of its declared shapes
        assert_works_or_refused(cli("bench", path, "--runs", "2", "--warmup", "1"), stem)


# --- Hugging Face folders the studio cannot open ------------------------------------------------------

def _folder(root: Path, name: str, config: dict | None, *, vocab: bool = True, weights: bool = True) -> Path:
    folder = root / name
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if vocab:
        (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]) + "\n")
    if weights:
        from safetensors.numpy import save_file

        save_file({"embeddings.weight": np.zeros((6, 8), np.float32)}, str(folder / "model.safetensors"))
    return folder


_TINY_LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 6, "hidden_size": 8,
               "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2}

HF_FOLDERS = {  # name → (config.json, folder options, phrase of the refusal)
    "unknown-model-type": ({"model_type": "fancynet", "hidden_size": 8}, {}, "model_type 'fancynet'"),
    "unknown-causal-lm": ({"model_type": "fancynet", "architectures": ["FancyNetForCausalLM"]}, {},
                          "model_type 'fancynet'"),
    "no-model-type": ({"architectures": ["BertModel"]}, {}, "no model_type"),
    "remote-code": ({"model_type": "custom", "architectures": ["CustomForCausalLM"],
                     "auto_map": {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}}, {}, "--trust"),
    "tokenizer-only": (None, {"weights": False}, "without config.json"),
    "no-weights": ({"model_type": "bert", "architectures": ["BertModel"]}, {"weights": False}, "no weights"),
    "vision-vit": ({"model_type": "vit", "architectures": ["ViTForImageClassification"]}, {"vocab": False},
                   "an image model"),
    "speech-whisper": ({"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"]}, {},
                       "an audio model"),
    "llama-broken-tokenizer": (_TINY_LLAMA, {"vocab": False}, "tokenizer"),
}


@pytest.mark.parametrize("name", list(HF_FOLDERS))
def test_hugging_face_folders_transformers_cannot_open_are_refused_in_one_line(name, tmp_path):
    config, options, phrase = HF_FOLDERS[name]
    folder = _folder(tmp_path, name, config, **options)
    if name == "llama-broken-tokenizer":
        (folder / "tokenizer.json").write_text("{not json")
    assert_works_or_refused(cli("info", folder), name, phrase)
