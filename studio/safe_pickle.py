"""Load PyTorch checkpoints without running code from the file.

A ``.pt`` file is a pickle, and unpickling can call any function the file names. The studio loads
with ``torch.load(weights_only=True)`` and admits only an allow-list of *classes*: PyTorch's and
Ultralytics' network modules (``torch.nn.modules.*``, ``ultralytics.nn.*``) and a few plain
containers. Anything else is refused with the names it asked for, unless the user trusts the file.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

from studio.errors import BadInputError, NeedsTrustError

# Network-module families whose classes may be rebuilt from a checkpoint. Only nn.Module subclasses
# from these modules qualify: their unpickling sets attributes and never calls user code. studio.nets
# and efficientnet_lite_pytorch hold the studio's own networks (Darknet, split blocks of pruned YOLOs).
_MODULE_FAMILIES = ("torch.nn.modules.", "ultralytics.nn.", "studio.nets.", "efficientnet_lite_pytorch.")
# Plain data containers seen in Ultralytics checkpoints (training arguments, metadata).
_PLAIN_TYPES = {
    "collections.OrderedDict",
    "builtins.set",
    "types.SimpleNamespace",
    "argparse.Namespace",
    "ultralytics.utils.IterableSimpleNamespace",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    # EfficientNet-Lite keeps its configuration in two namedtuples (saved with pruned variants).
    "efficientnet_lite_pytorch.utils.GlobalParams",
    "efficientnet_lite_pytorch.utils.BlockArgs",
}

# Older Ultralytics releases pickled classes under paths that moved since (its own loader remaps them).
_RENAMED_MODULES = {
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
}

TRUST_FIX = "load it only if you trust its author: pass --trust (the GUI asks) to allow arbitrary code"


def _resolve_allowed(qualified: str) -> type | None:
    """The class named ``module.Name`` when it is on the allow-list, else None (never imports outside it)."""
    module_name, _, attr = qualified.rpartition(".")
    for old, new in _RENAMED_MODULES.items():
        if module_name == old or module_name.startswith(old + "."):
            module_name = new + module_name[len(old):]
            qualified = f"{module_name}.{attr}"
    is_family = qualified.startswith(_MODULE_FAMILIES) and qualified not in _PLAIN_TYPES
    if not is_family and qualified not in _PLAIN_TYPES:
        return None
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    if not isinstance(obj, type):
        return None
    if is_family:
        import torch

        if not issubclass(obj, torch.nn.Module):
            return None
    return obj


def _unsafe_globals(path: Path) -> list[str]:
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (RuntimeError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as exc:
        raise BadInputError(
            f"not a readable PyTorch checkpoint ({_first_line(exc)})",
            path=path,
            fix="give a file written by torch.save (Ultralytics .pt), or export the model to ONNX",
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _is_zip_checkpoint(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def safe_torch_load(path: Path, *, trust: bool = False) -> Any:
    """Unpickle a checkpoint on the CPU, refusing anything outside the allow-list unless ``trust``."""
    import torch

    if trust:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    if not _is_zip_checkpoint(path):
        return _load_legacy(path)
    needed = _unsafe_globals(path)
    allowed = {name: _resolve_allowed(name) for name in needed}
    refused = sorted(name for name, cls in allowed.items() if cls is None)
    if refused:
        shown = ", ".join(refused[:4]) + (f" and {len(refused) - 4} more" if len(refused) > 4 else "")
        raise NeedsTrustError(f"the checkpoint asks to run code outside the allow-list ({shown})",
                              path=path, fix=TRUST_FIX)
    try:
        # (class, name-in-file) pairs: the file may name a class by an older or re-exported path.
        with torch.serialization.safe_globals([(cls, name) for name, cls in allowed.items()]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise NeedsTrustError(f"the checkpoint needs more than plain weights ({_first_line(exc)})",
                              path=path, fix=TRUST_FIX) from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        raise BadInputError(f"the checkpoint is damaged ({_first_line(exc)})", path=path,
                            fix="re-save or re-download the file") from exc


def _load_legacy(path: Path) -> Any:
    """Non-zip files: the pre-1.6 torch format or a bare pickle. weights_only refuses any code."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = _first_line(exc)
        if "invalid load key" in message or "could not find MARK" in message:
            raise BadInputError("not a PyTorch checkpoint (no zip archive, no pickle)", path=path,
                                fix="give a file written by torch.save, or an .onnx model") from exc
        raise NeedsTrustError(f"the file is a pickle that asks for more than weights ({message})",
                              path=path, fix=TRUST_FIX) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise BadInputError(f"not a readable PyTorch checkpoint ({_first_line(exc)})", path=path,
                            fix="give a file written by torch.save, or an .onnx model") from exc
