"""Language models: a Hugging Face folder (config, safetensors, tokenizer) or a GGUF file.

Causal LMs (``*ForCausalLM``) become ``generate`` models; sentence-transformers folders (and bare
encoders) become ``embed`` models. GGUF files are dequantised to FP32 by transformers' GGUF support,
so every compression starts from float weights. Everything loads from local files only: the studio
sets ``HF_HUB_OFFLINE=1`` and passes ``local_files_only`` so nothing is fetched.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from studio.errors import BadInputError, NeedsTrustError, UnsupportedError, first_line
from studio.hashing import sha256_file
from studio.model import ModelHandle, Provenance, Task, TensorSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model")


def _weights(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.safetensors"), *folder.glob("pytorch_model*.bin")])


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def _digest(paths: list[Path]) -> str:
    """The largest weight file's sha256 (hashing every shard of a big model would take too long)."""
    return sha256_file(max(paths, key=lambda p: p.stat().st_size)) if paths else ""


def _handle(name: str, fmt: str, task: Task, module: Any, tokenizer: Any, config: Any, paths: list[Path],
            loader: str, family: str) -> ModelHandle:
    context = int(getattr(config, "max_position_embeddings", 0) or getattr(tokenizer, "model_max_length", 0) or 0)
    params = int(sum(p.numel() for p in module.parameters()))
    outputs = (TensorSpec("logits", (1, "sequence", int(config.vocab_size)), "float32") if task == Task.GENERATE
               else TensorSpec("embedding", (1, int(getattr(config, "hidden_size", 0))), "float32"),)
    return ModelHandle(
        name=name, format=fmt, task=task, decoder="lm" if task == Task.GENERATE else "embed", labels=(),
        image_input=None, inputs=(TensorSpec("input_ids", (1, "sequence"), "int64"),), outputs=outputs,
        size_bytes=_size(paths), params=params, source_paths=tuple(paths), torch_module=module.eval(),
        tokenizer=tokenizer,
        provenance=Provenance(path=str(paths[0]), sha256=_digest(paths), loader=loader),
        metadata={"family": family, "architecture": (getattr(config, "architectures", None) or ["?"])[0],
                  "context_length": str(context), "vocab_size": str(getattr(config, "vocab_size", ""))},
    )


def load_folder(path: Path, *, trust: bool = False) -> ModelHandle:
    if (path / "genai_config.json").is_file():
        return load_genai_folder(path)
    if (path / "deploy_studio.json").is_file() and (path / "model.onnx").is_file():
        return load_onnx_encoder(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BadInputError("is a folder without config.json, so not a Hugging Face model", path=path,
                            fix="open the model folder that holds config.json, or a model file")
    config = _read_json(config_file)  # first: a broken config is the problem to name, not what else is missing
    _check_architecture(config, path, trust)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BadInputError("has no tokenizer (no tokenizer.json, vocab.txt, tokenizer.model…)", path=path,
                            fix="copy the tokenizer files that came with the model into this folder")
    weights = _weights(path)
    if not weights:
        raise BadInputError("has no weights (*.safetensors or pytorch_model.bin)", path=path,
                            fix="copy the model's weight files into the folder")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise BadInputError("config.json: 'architectures' is not a list of class names", path=config_file,
                            fix="restore the model's config.json")
    if _is_causal(architectures) and not (path / "modules.json").is_file():
        return _load_causal(path, weights, trust)
    if any(a.endswith(("ForConditionalGeneration", "ForSeq2SeqLM")) for a in architectures):
        raise UnsupportedError(f"{path.name}: {architectures[0]} (encoder-decoder) is not supported yet",
                               fix="open a causal language model (…ForCausalLM) or a sentence-transformers folder")
    return _load_encoder(path, weights, trust)


_SUPPORTED_LMS = ("the studio opens Hugging Face language models transformers implements: causal LMs "
                  "(…ForCausalLM: Llama, Qwen2, GPT-2…) and text encoders (BERT-style, sentence-transformers)")
# transformers' task tables whose models take images, video, audio or series instead of text.
_NON_TEXT_TABLES = {"an image": ("IMAGE_CLASSIFICATION", "IMAGE_SEGMENTATION", "SEMANTIC_SEGMENTATION",
                                 "INSTANCE_SEGMENTATION", "UNIVERSAL_SEGMENTATION", "OBJECT_DETECTION",
                                 "DEPTH_ESTIMATION", "KEYPOINT", "IMAGE_TO_IMAGE", "MASK_GENERATION", "IMAGE_MATTING",
                                 "POSE_ESTIMATION", "MASKED_IMAGE_MODELING", "ZERO_SHOT_IMAGE", "BACKBONE",
                                 "MODEL_FOR_IMAGE_MAPPING"),
                    "a video": ("VIDEO_CLASSIFICATION",),
                    "an audio": ("AUDIO", "CTC", "SPEECH", "RNNT", "TDT", "TEXT_TO_SPECTROGRAM", "TEXT_TO_WAVEFORM"),
                    "a time-series": ("TIME_SERIES",)}


def _check_architecture(config: dict[str, Any], path: Path, trust: bool) -> None:
    """Refuse, by name, a folder transformers cannot build or whose model does not take text, before any
    tokenizer or weights are read (their errors would not say what is really missing)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type")
    if config.get("auto_map"):  # the folder ships its own modelling code
        if not trust:
            raise NeedsTrustError("its config.json asks for modelling code shipped in the folder (auto_map), "
                                  "which would run on loading", path=path,
                                  fix="pass --trust only if you trust the folder's .py files")
        return
    if not model_type:
        raise BadInputError("config.json names no model_type, so transformers cannot tell its architecture",
                            path=path, fix="restore the config.json that came with the model")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        raise UnsupportedError(f"config.json names model_type '{str(model_type)[:40]}', an architecture "
                               f"transformers {transformers.__version__} does not implement", path=path,
                               fix=_SUPPORTED_LMS)
    # A sentence-transformers folder (modules.json) says itself what it embeds (CLIP takes text too).
    modality = None if (path / "modules.json").is_file() else _modality(config.get("architectures") or [], model_type)
    if modality:
        raise UnsupportedError(f"{model_type} ({', '.join(config.get('architectures') or [model_type])[:80]}) is "
                               f"{modality} model, not a language model", path=path, fix=_SUPPORTED_LMS)


def _modality(architectures: list[str], model_type: str) -> str | None:
    """"an image" (or "an audio"…) when transformers files these classes under a non-text task."""
    from transformers.models.auto import modeling_auto

    if not isinstance(architectures, list) or _is_causal([a for a in architectures if isinstance(a, str)]):
        return None
    for noun, keys in _NON_TEXT_TABLES.items():
        for name, table in vars(modeling_auto).items():
            if not (name.endswith("_MAPPING_NAMES") and any(key in name for key in keys)):
                continue
            if any(a in table.values() for a in architectures) or (not architectures and model_type in table):
                return noun
    return None


def _is_causal(architectures: list[str]) -> bool:
    """Whether transformers' AutoModelForCausalLM builds one of these classes: its own table says, since
    the names alone do not (GPT2LMHeadModel, XLNetLMHeadModel, Gemma3ForConditionalGeneration…)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    return any(a in causal or a.endswith("ForCausalLM") for a in architectures)


def _load_causal(path: Path, weights: list[Path], trust: bool) -> ModelHandle:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust)
    except (ValueError, OSError, TypeError, ImportError) as exc:  # transformers' words for unreadable files
        raise BadInputError(f"transformers cannot read its tokenizer ({_first_line(exc)})", path=path,
                            fix="copy the tokenizer files that came with the model (tokenizer.json, "
                                "tokenizer_config.json…)") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32,
                                                     trust_remote_code=trust)
    except (ValueError, OSError, ImportError, KeyError, RuntimeError) as exc:  # missing code, shapes that differ
        raise BadInputError(f"transformers cannot build the model from this folder ({_first_line(exc)})",
                            path=path, fix="check config.json against the weights, or re-save the folder with "
                                           "save_pretrained") from exc
    return _handle(path.name, "hf-folder", Task.GENERATE, model, tokenizer, model.config, weights,
                   "transformers AutoModelForCausalLM (local files)", "hf-causal-lm")


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


def _load_encoder(path: Path, weights: list[Path], trust: bool) -> ModelHandle:
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True, trust_remote_code=trust)
    except Exception as exc:  # a folder sentence-transformers cannot assemble: say which and why
        first = first_line(exc)
        raise BadInputError(f"cannot be loaded as a text encoder ({type(exc).__name__}: {first})", path=path,
                            fix="open a sentence-transformers folder or a causal language model folder") from exc
    # model[0] is sentence-transformers' Transformer module; indexing an nn.Sequential types it only as a Module.
    transformer: Any = model[0].auto_model
    return _handle(path.name, "hf-folder", Task.EMBED, model, model.tokenizer, transformer.config, weights,
                   "sentence-transformers (local files)", "sentence-transformer")


def load_gguf(path: Path, *, trust: bool = False) -> ModelHandle:
    """A GGUF file, dequantised to FP32 once; later opens read the cached FP32 folder (~0.5 s instead of
    ~15 s for SmolLM2-135M here), found by the file's hash so an edited file is dequantised again."""
    from studio.lm.hf_folder import dequantised_folder, hf_folder

    check_gguf_header(path)
    digest = sha256_file(path)
    cached = dequantised_folder(path.stem, digest)
    if (cached / "config.json").is_file():
        try:
            model, tokenizer = _from_folder(cached)
            return _gguf_handle(path, model, tokenizer, digest)
        except (OSError, ValueError, RuntimeError):  # a damaged cache entry: dequantise again
            pass
    handle = _gguf_handle(path, *_dequantised(path), digest)
    hf_folder(handle)  # writes the cache entry (the onnxruntime-genai builder reads it too)
    return handle


# The smallest a GGUF tensor-info record (name length + 1 byte, dims count, one dim, type, offset) and
# a metadata entry (key length + 1 byte, type, 1-byte value) can be: a header declaring more of them
# than the file can hold is refused before any reader allocates for them.
_MIN_TENSOR_INFO, _MIN_METADATA_ENTRY = 33, 14


def check_gguf_header(path: Path) -> None:
    import struct

    with open(path, "rb") as handle:
        head = handle.read(24)
    fix = "give a GGUF file written by llama.cpp's convert script (versions 2 and 3)"
    if head[:4] != b"GGUF":
        raise BadInputError("not a GGUF file (it does not start with the GGUF magic bytes)", path=path, fix=fix)
    if len(head) < 24:
        raise BadInputError("the GGUF header is truncated", path=path, fix=fix)
    version, tensors, entries = struct.unpack("<IQQ", head[4:24])
    if version not in (2, 3):
        raise BadInputError(f"GGUF version {version}; readers handle versions 2 and 3", path=path, fix=fix)
    size = path.stat().st_size
    if tensors * _MIN_TENSOR_INFO + entries * _MIN_METADATA_ENTRY > size:
        raise BadInputError(f"the header declares {tensors:,} tensors and {entries:,} metadata entries, more than "
                            f"a {size:,}-byte file can hold (truncated or forged)", path=path, fix=fix)


def _from_folder(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    return model, tokenizer


def _gguf_handle(path: Path, model: Any, tokenizer: Any, digest: str) -> ModelHandle:
    handle = _handle(path.stem, "gguf", Task.GENERATE, model, tokenizer, model.config, [path],
                     "transformers GGUF reader, dequantised to FP32", "hf-causal-lm")
    return handle.replace(provenance=dataclasses.replace(handle.provenance, sha256=digest))


def _dequantised(path: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True,
                                                     dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError, IndexError, TypeError, EOFError, OSError, __import__("struct").error
            ) as exc:  # the reader walks a file from a stranger: any of these means "not a GGUF it can read"
        first = first_line(exc)
        raise BadInputError(f"transformers cannot dequantise this GGUF ({first})", path=path,
                            fix="GGUF works for the architectures transformers reads (Llama, Mistral, Qwen2, Phi3, "
                                "Gemma…); convert other models to a Hugging Face folder") from exc
    model.config.quantization_config = None  # dequantised: the weights are FP32 now
    return model, tokenizer


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BadInputError("has no tokenizer (no tokenizer.json, vocab.txt, tokenizer.model…)", path=path,
                            fix="copy the tokenizer files that came with the model into this folder")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"is not readable JSON ({exc})", path=path, fix="restore the file from the export") from exc
    if not isinstance(data, dict):
        raise BadInputError("is not a JSON object", path=path, fix="restore the file from the export")
    return data


def load_genai_folder(path: Path) -> ModelHandle:
    """An ONNX decoder with KV cache in onnxruntime-genai's layout (what the studio exports for a causal LM)."""
    from studio.lm.variants import genai_variant

    config = _read_json(path / "genai_config.json").get("model", {})
    graphs = sorted(path.glob("*.onnx"))
    if not graphs:
        raise BadInputError("has genai_config.json but no .onnx graph", path=path, fix="copy the whole exported folder")
    tokenizer = _tokenizer(path)
    vocab = int(config.get("vocab_size") or len(tokenizer))
    base = ModelHandle(
        name=path.name, format="onnx-genai", task=Task.GENERATE, decoder="lm", labels=(), image_input=None,
        inputs=(TensorSpec("input_ids", (1, "sequence"), "int64"),),
        outputs=(TensorSpec("logits", (1, "sequence", vocab), "float32"),), size_bytes=0,
        provenance=Provenance(path=str(graphs[0]), sha256=sha256_file(graphs[0]), loader="onnxruntime-genai folder"),
        tokenizer=tokenizer,
        metadata={"family": "onnx-genai", "architecture": str(config.get("type", "?")),
                  "context_length": str(config.get("context_length") or ""), "vocab_size": str(vocab)},
    )
    handle = genai_variant(base, path, precision=genai_precision(graphs[0]), note="opened from an exported folder")
    return handle.replace(name=path.name, metadata={k: v for k, v in handle.metadata.items()
                                                    if k not in ("parent", "parent_sha256")})


def genai_precision(graph: Path) -> str:
    import onnx

    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    bits = {a.i for n in nodes if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "bits"}
    return "int4" if 4 in bits else "int8" if bits else "fp32"


def load_onnx_encoder(path: Path) -> ModelHandle:
    """A sentence encoder exported by the studio: model.onnx + tokenizer + the pipeline's pooling."""
    from studio.lm.variants import encoder_variant

    manifest = _read_json(path / "deploy_studio.json")
    if manifest.get("kind") != "text-encoder":
        raise BadInputError(f"describes a '{manifest.get('kind')}', not a text encoder",
                            path=path / "deploy_studio.json",
                            fix="open a folder exported by Deploy Studio from a sentence encoder")
    tokenizer = _tokenizer(path)
    graph = path / "model.onnx"
    base = ModelHandle(
        name=path.name, format="onnx", task=Task.EMBED, decoder="embed", labels=(), image_input=None,
        inputs=(TensorSpec("input_ids", (1, "sequence"), "int64"),),
        outputs=(TensorSpec("embedding", (1, int(manifest.get("hidden_size") or 0)), "float32"),), size_bytes=0,
        provenance=Provenance(path=str(graph), sha256=sha256_file(graph), loader="ONNX sentence encoder folder"),
        tokenizer=tokenizer, metadata={"family": "onnx-encoder"},
    )
    handle = encoder_variant(base, graph, precision=str(manifest.get("precision") or "fp32"),
                             pooling=str(manifest.get("pooling") or "mean"), normalize=bool(manifest.get("normalize")),
                             max_length=int(manifest.get("max_length") or 256), note="opened from an exported folder")
    return handle.replace(name=path.name, metadata={k: v for k, v in handle.metadata.items()
                                                    if k not in ("parent", "parent_sha256")})
