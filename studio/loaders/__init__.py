"""``load_model(spec)``: any supported model file, or ``zoo:NAME``, becomes a ``ModelHandle``.

Loaders are listed in one table by file suffix; each lives in its own module and is imported only
when used, so that opening the app never pays for torch or Ultralytics up front.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from studio.errors import BadInputError
from studio.model import ModelHandle

ZOO_PREFIX = "zoo:"


@dataclass(frozen=True)
class LoaderSpec:
    name: str
    suffixes: tuple[str, ...]
    target: str  # "module:function", imported on first use
    description: str

    def load(self, path: Path, *, trust: bool) -> ModelHandle:
        module_name, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module_name), func)(path, trust=trust)


LOADERS: tuple[LoaderSpec, ...] = (
    LoaderSpec("ultralytics-pt", (".pt",), "studio.loaders.ultralytics_pt:load",
               "Ultralytics checkpoint (detect, segment, classify, pose, obb)"),
    LoaderSpec("ultralytics-yaml", (".yaml", ".yml"), "studio.loaders.ultralytics_yaml:load",
               "Ultralytics model definition, built with random weights"),
    LoaderSpec("onnx", (".onnx",), "studio.loaders.onnx_file:load",
               "ONNX graph (Ultralytics-exported detectors recognised, any other as a tensor model)"),
    LoaderSpec("darknet", (".cfg", ".weights"), "studio.loaders.darknet:load",
               "Darknet .cfg with its .weights beside it"),
    LoaderSpec("gguf", (".gguf",), "studio.loaders.language:load_gguf",
               "GGUF language model (transformers' reader, dequantised to FP32)"),
    LoaderSpec("tflite", (".tflite",), "studio.loaders.tflite_file:load",
               "TFLite / LiteRT flatbuffer (run in ai_edge_litert's interpreter)"),
    LoaderSpec("openvino", (".xml",), "studio.loaders.openvino_ir:load",
               "OpenVINO IR (model.xml with its .bin beside it)"),
    LoaderSpec("coreml", (".mlmodel",), "studio.loaders.coreml_file:load",
               "CoreML model (inspected everywhere, run on macOS only)"),
    LoaderSpec("tensorflow", (".pb",), "studio.loaders.tensorflow_graph:load",
               "TensorFlow frozen graph, read through OpenVINO's converter (no TensorFlow needed)"),
    LoaderSpec("torch-weights", (".pth", ".bin", ".safetensors"), "studio.loaders.state_dict:load",
               "bare PyTorch weights (refused: they carry no architecture)"),
)
FOLDER_LOADER = LoaderSpec("hf-folder", (), "studio.loaders.language:load_folder",
                           "Hugging Face model folder (config.json, weights, tokenizer)")
# Formats that are folders on disk, recognised by what the folder holds (checked in this order).
MLPACKAGE_LOADER = LoaderSpec("coreml-package", (".mlpackage",), "studio.loaders.coreml_file:load",
                              "CoreML .mlpackage folder (inspected everywhere, run on macOS only)")
OPENVINO_FOLDER_LOADER = LoaderSpec("openvino-folder", (), "studio.loaders.openvino_ir:load",
                                    "a folder holding one OpenVINO IR (model.xml + .bin), as Ultralytics writes")
SAVED_MODEL_LOADER = LoaderSpec("tensorflow-saved-model", (), "studio.loaders.tensorflow_graph:load",
                                "TensorFlow SavedModel folder (saved_model.pb), read through OpenVINO's converter")


def folder_loader_for(path: Path) -> LoaderSpec:
    """The loader of a model that is a folder: CoreML package, OpenVINO IR folder, SavedModel, else Hugging Face."""
    if path.suffix.lower() in MLPACKAGE_LOADER.suffixes:
        return MLPACKAGE_LOADER
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return SAVED_MODEL_LOADER
    if not (path / "config.json").is_file() and any(path.glob("*.xml")):
        return OPENVINO_FOLDER_LOADER
    return FOLDER_LOADER


def accepted_suffixes() -> list[str]:
    return sorted({suffix for spec in LOADERS for suffix in spec.suffixes})


def loader_for(path: Path) -> LoaderSpec:
    suffix = path.suffix.lower()
    for spec in LOADERS:
        if suffix in spec.suffixes:
            return spec
    raise BadInputError(
        f"unknown model format '{path.suffix or '(no extension)'}'",
        path=path,
        fix=f"the studio opens {', '.join(accepted_suffixes())} files and zoo:NAME (see 'deploy-studio zoo')",
    )


def check_readable_file(path: Path) -> None:
    """Refuse a missing, empty or unreadable path with a message that names it."""
    if path.is_symlink() and not path.exists():
        raise BadInputError("is a symbolic link that leads nowhere (a loop, or its target is gone)", path=path,
                            fix="open the file the link should point at")
    if not path.exists():
        raise BadInputError("no such file", path=path, fix="check the path, or use zoo:NAME for a bundled model")
    if path.is_dir():
        raise BadInputError("is a folder, not a model file", path=path,
                            fix=f"give a model file ({', '.join(accepted_suffixes())})")
    if not path.is_file():  # a FIFO would block the first read forever; a device never ends
        raise BadInputError("is not a regular file (a pipe, socket or device)", path=path,
                            fix="give a model file saved on disk")
    if path.stat().st_size == 0:
        raise BadInputError("the file is empty (0 bytes)", path=path, fix="re-export or re-download the model")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise BadInputError(f"cannot read the file ({exc.strerror})", path=path, fix="check its permissions") from exc


def load_model(spec: str | Path, *, trust: bool = False) -> ModelHandle:
    """Load ``spec`` (a path or ``zoo:NAME``). Raises ``StudioError`` subclasses for bad input.

    ``trust`` allows a pickle-based checkpoint to run code outside the allow-list; never set it for
    a file the user has not vouched for.
    """
    text = str(spec)
    if text.startswith(ZOO_PREFIX):
        from studio import zoo

        return zoo.load(text[len(ZOO_PREFIX):], trust=trust)
    path = Path(text).expanduser()
    if path.is_dir():  # a folder format, or a Hugging Face folder (its loader says what is missing)
        return folder_loader_for(path).load(path, trust=trust)
    loader = loader_for(path)
    check_readable_file(path)
    return loader.load(path, trust=trust)
