"""Ultralytics ``.pt`` checkpoints, unpickled through the allow-list of ``studio.safe_pickle``."""

from __future__ import annotations

from pathlib import Path

from studio.errors import BadInputError
from studio.hashing import sha256_file
from studio.loaders.ultralytics_common import handle_from_module, imgsz_pair
from studio.model import ModelHandle, Provenance
from studio.safe_pickle import safe_torch_load


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    import torch

    checkpoint = safe_torch_load(path, trust=trust)
    if isinstance(checkpoint, torch.nn.Module):  # torch.save(model) instead of an Ultralytics checkpoint
        checkpoint = {"model": checkpoint}
    if not isinstance(checkpoint, dict):
        raise BadInputError(f"holds a {type(checkpoint).__name__}, not a model", path=path,
                            fix="save the model with Ultralytics (model.save) or export it to ONNX")
    studio_meta = checkpoint.get("deploy_studio")
    if isinstance(studio_meta, dict) and studio_meta.get("family") != "ultralytics":
        from studio.checkpoint import handle_from_studio_checkpoint

        return _with_gflops(handle_from_studio_checkpoint(checkpoint, path))
    module = checkpoint.get("ema") or checkpoint.get("model")
    if not isinstance(module, torch.nn.Module):
        keys = ", ".join(list(map(str, checkpoint))[:5])
        raise BadInputError(f"is not an Ultralytics checkpoint (no 'model' entry; keys: {keys})", path=path,
                            fix="a bare state_dict has no architecture: export the model to ONNX where it is defined")
    if not hasattr(module, "yaml") or not hasattr(module, "model"):
        raise BadInputError(f"holds a {type(module).__name__}, not an Ultralytics YOLO model", path=path,
                            fix="export it to ONNX in the code that defines it, and open the .onnx")
    module = module.float().eval()
    for param in module.parameters():
        param.requires_grad_(False)
    train_args = checkpoint.get("train_args") or {}
    args = dict(train_args)
    # Ultralytics keeps its settings dict on the model; nn.Module.__setattr__ is typed for tensors and modules only.
    module.args = args  # type: ignore[assignment]
    imgsz = imgsz_pair(train_args.get("imgsz") or args.get("imgsz"))
    provenance = Provenance(
        path=str(path.resolve()),
        sha256=sha256_file(path),
        loader="ultralytics-pt" + (" (trusted: full unpickling)" if trust else " (weights_only allow-list)"),
        note=f"ultralytics {checkpoint.get('version', '?')}, licence {checkpoint.get('license', 'unstated')}",
    )
    handle = handle_from_module(module, path=path, fmt="ultralytics-pt", provenance=provenance, imgsz=imgsz,
                                random_weights=False)
    if isinstance(studio_meta, dict):  # a studio variant of an Ultralytics model: keep its name and run-time mode
        extra = {k: str(studio_meta[k]) for k in ("runtime_mode", "runtime_settings", "parent_sha256")
                 if studio_meta.get(k)}
        handle = handle.replace(name=studio_meta.get("name") or handle.name, metadata={**handle.metadata, **extra})
    return handle


def _with_gflops(handle: ModelHandle) -> ModelHandle:
    from studio.complexity import torch_gflops

    shape = handle.inputs[0].shape
    size = handle.image_input.size if handle.image_input else tuple(shape[2:4])
    gflops, method = torch_gflops(handle.torch_module, (1, int(shape[1]), *map(int, size)))
    return handle.replace(gflops=gflops, gflops_method=method)
