"""Saving a PyTorch variant (pruned, factorised, fine-tuned) so that it reloads in a fresh process.

The file is a ``torch.save`` zip like an Ultralytics checkpoint — an Ultralytics model stays loadable
by Ultralytics itself — plus a ``deploy_studio`` table (plain data) that says how to feed and decode
the network. Loading goes through the same allow-listed ``weights_only`` unpickling as any ``.pt``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from studio.atomic import staged_file
from studio.errors import BadInputError, UnsupportedError
from studio.hashing import sha256_file
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec
from studio.runtime.choice import RuntimeMode, runtime_mode

FORMAT_VERSION = 1


def save_checkpoint(handle: ModelHandle, path: Path, recipe: dict[str, Any] | None = None) -> Path:
    """Write ``handle``'s module to ``path`` atomically (temporary file, then rename)."""
    import torch

    if handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} has no PyTorch module to save")
    module = handle.torch_module
    meta = {
        "version": FORMAT_VERSION, "name": handle.name, "family": handle.metadata.get("family", "torch"),
        "task": str(handle.task), "decoder": handle.decoder, "labels": list(handle.labels),
        "image_input": handle.image_input.as_dict() if handle.image_input else None,
        "inputs": [s.as_dict() for s in handle.inputs], "outputs": [s.as_dict() for s in handle.outputs],
        "parent_sha256": handle.metadata.get("parent_sha256", ""), "recipe": recipe or {},
        "runtime_mode": runtime_mode(handle).value,  # plain data: the file is read without the studio's types
        "runtime_settings": handle.metadata.get("runtime_settings", ""),
    }
    payload: dict[str, Any] = {"model": module, "deploy_studio": meta}
    if meta["family"] == "ultralytics":
        payload["train_args"] = {k: v for k, v in dict(getattr(module, "args", {})).items()
                                 if isinstance(v, (str, int, float, bool, type(None)))}
    with staged_file(path) as tmp:
        torch.save(payload, tmp)
    return path


def handle_from_studio_checkpoint(checkpoint: dict[str, Any], path: Path) -> ModelHandle:
    """A handle for a non-Ultralytics module saved by ``save_checkpoint``."""
    from studio.complexity import torch_params

    meta = checkpoint["deploy_studio"]
    module = checkpoint.get("model")
    if module is None or not hasattr(module, "forward"):
        raise BadInputError("the studio checkpoint holds no network", path=path, fix="re-save the variant")
    mode = _runtime_mode(meta, path)
    module = module.float().eval()
    for param in module.parameters():
        param.requires_grad_(False)
    image = meta.get("image_input")
    image_input = None
    if image:
        image = dict(image)
        image["size"], image["resize"] = tuple(image["size"]), Resize(image["resize"])
        image_input = ImageInput(**{f.name: image[f.name] for f in dataclasses.fields(ImageInput) if f.name in image})
    specs = [tuple(TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in meta.get(k, []))
             for k in ("inputs", "outputs")]
    return ModelHandle(
        name=meta.get("name", path.stem), format="torch", task=Task(meta["task"]), decoder=meta["decoder"],
        labels=tuple(meta.get("labels", ())), image_input=image_input, inputs=specs[0], outputs=specs[1],
        size_bytes=path.stat().st_size,
        provenance=Provenance(path=str(path.resolve()), sha256=sha256_file(path), loader="studio checkpoint"),
        params=torch_params(module), source_paths=(path,), torch_module=module,
        metadata={"family": meta.get("family", "torch"), "parent_sha256": meta.get("parent_sha256", ""),
                  **({"runtime_mode": mode.value, "runtime_settings": meta.get("runtime_settings", "")}
                     if mode is not RuntimeMode.PLAIN else {})},
    )


def _runtime_mode(meta: dict[str, Any], path: Path) -> RuntimeMode:
    try:
        return RuntimeMode(meta.get("runtime_mode") or "")
    except ValueError:
        raise BadInputError(f"unknown runtime mode {meta['runtime_mode']!r} in the studio checkpoint", path=path,
                            fix="re-create the variant with this version of the studio") from None
