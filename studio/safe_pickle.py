"""Load PyTorch checkpoints without running code from the file.

A ``.pt`` file is a pickle, and unpickling can call any function the file names. The studio loads
with ``torch.load(weights_only=True)`` and admits only an allow-list of *classes*: PyTorch's and
Ultralytics' network modules (``torch.nn.modules.*``, ``ultralytics.nn.*``) and a few plain
containers. Anything else is refused with the names it asked for, unless the user trusts the file.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pickle
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.errors import BadInputError, NeedsTrustError, first_line

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


def _class_function(owner: Any, name: Any) -> Any:
    """``builtins.getattr`` as Ultralytics 8.0–8.2 checkpoints use it (``getattr(Detect, "forward")``), narrowed:
    only a public function defined on an allow-listed network class. What it returns cannot be called during
    unpickling (torch's weights-only unpickler calls only allow-listed globals), so a file gets no code run."""
    import inspect

    allowed = (isinstance(owner, type) and isinstance(name, str) and name.isidentifier()
               and not name.startswith("_")
               and _resolve_allowed(f"{owner.__module__}.{owner.__qualname__}") is owner
               and inspect.isfunction(inspect.getattr_static(owner, name, None)))
    if not allowed:
        raise pickle.UnpicklingError(f"Unsupported global: getattr({owner!r}, {name!r}) outside the allow-list")
    return getattr(owner, name)


# Globals that are not classes, admitted in a narrowed form.
_NARROWED = {"builtins.getattr": _class_function}
_LOADING = threading.Lock()  # one allow-listed load at a time: each edits torch's process-wide allow-list


def _global_name(entry: Any) -> str:
    """The name a torch allow-list entry answers to: ``(obj, "module.Name")``, or the object's own."""
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


def _conflicts(entry: Any, allowed: dict[str, Any]) -> bool:
    """Whether a registered entry answers to a name in ``allowed`` with another object than the studio's."""
    name = _global_name(entry)
    return name in allowed and (entry[0] if isinstance(entry, tuple) else entry) is not allowed[name]


@contextlib.contextmanager
def _only_these_globals(allowed: dict[str, Any], *, exclusive: bool = False) -> Iterator[None]:
    """torch's weights-only unpickler resolves a name through one process-wide set of entries, and when two
    entries answer to the same name, whichever the set iterates last wins: an arbitrary one. Ultralytics' own
    restricted loading (``ULTRALYTICS_SAFE_LOAD``, which ``studio.offline`` turns on) registers, for the life of
    the process, a ``builtins.getattr`` that admits any non-dunder attribute of any module class; with it in the
    set the narrowed getattr above was the one used only by chance (a test run in another order admitted
    ``getattr(Detect, "_inference")``). So while the studio loads, every other entry under a name the file
    needs is taken out of the set, and put back after for Ultralytics' own later loads; with ``exclusive`` every
    other entry is (a file whose globals cannot be listed beforehand: the legacy format). Ultralytics registers
    under its lock, held here too so that none of its loads in another thread puts one back meanwhile."""
    import torch

    tasks = sys.modules.get("ultralytics.nn.tasks")  # not imported: it registered nothing and loads nothing
    theirs = getattr(getattr(tasks, "_SafeLoad", None), "_lock", None) or contextlib.nullcontext()
    with _LOADING, theirs:
        others = [entry for entry in torch.serialization.get_safe_globals()
                  if exclusive or _conflicts(entry, allowed)]
        if others:  # torch has no public remove: leaving a safe_globals block removes the entries it was given
            with torch.serialization.safe_globals(others):
                pass
        try:
            with torch.serialization.safe_globals([(cls, name) for name, cls in allowed.items()]):
                yield
        finally:
            torch.serialization.add_safe_globals(others)


def _unsafe_globals(path: Path) -> list[str]:
    """Every global the checkpoint names that torch itself does not admit. torch's own scan leaves out what any
    code registered for the process (Ultralytics registers its allow-list, its getattr among them: then a file
    asking for ``getattr`` was not narrowed at all), so the names are read from the pickle and only torch's
    built-in allow-list is taken off."""
    import torch
    from torch import _weights_only_unpickler as unpickler

    try:
        torch.serialization.get_unsafe_globals_in_checkpoint(str(path))  # torch's checks: a zip, not TorchScript
        with zipfile.ZipFile(path) as archive:
            record = min((name for name in archive.namelist() if name.rpartition("/")[2] == "data.pkl"), key=len)
            data = archive.read(record)
        return sorted(unpickler.get_globals_in_pkl(io.BytesIO(data)) - set(unpickler._get_allowed_globals()))
    except (RuntimeError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as exc:
        raise BadInputError(
            f"not a readable PyTorch checkpoint ({first_line(exc, 160)})",
            path=path,
            fix="give a file written by torch.save (Ultralytics .pt), or export the model to ONNX",
        ) from exc


def _refused_global(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused (its message is a page long; this is the useful line)."""
    import re

    found = re.search(r"Unsupported (?:global|operand)[^\n]*", str(exc))
    return found.group(0)[:160] if found else first_line(exc, 160)


def _is_zip_checkpoint(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def safe_torch_load(path: Path, *, trust: bool = False) -> Any:
    """Unpickle a checkpoint on the CPU, refusing anything outside the allow-list unless ``trust``."""

    if trust:
        from studio.trust import remember_trust

        remember_trust(path)  # the user vouched for these bytes: the next load need not ask again
        return _load_trusted(path)
    try:
        return _load_allow_listed(path)
    except NeedsTrustError:
        from studio.trust import is_trusted

        if is_trusted(path):  # hashed only now: allow-listed files never pay for it
            return _load_trusted(path)
        raise


def _load_trusted(path: Path) -> Any:
    import torch

    check_container(path)  # trusting the author is not trusting the transfer: bombs are refused still
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise BadInputError(f"the checkpoint is damaged ({first_line(exc, 160)})", path=path,
                            fix="re-save or re-download the file") from exc


# A checkpoint written by torch.save stores its records uncompressed; a member that inflates to more
# than this, or 50x its stored size, is a zip bomb (reading it would exhaust memory).
MAX_INFLATED_MEMBER = 256 << 20
MAX_INFLATE_RATIO = 50


def check_container(path: Path) -> None:
    """Refuse, before torch reads a byte of it, a file that is neither a zip archive nor a pickle, and
    a zip archive whose members would inflate to absurd sizes."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not zipfile.is_zipfile(path):
        if head == b"PK\x03\x04":
            raise BadInputError("a zip archive (as torch.save writes) that is truncated or damaged: its directory "
                                "is missing", path=path, fix="copy or download the file again")
        if head[:1] != b"\x80":  # every pickle torch.save wrote (protocol >= 2) starts with PROTO
            hint = " (it looks like an ONNX model: rename it to .onnx)" if _looks_like_onnx(path) else ""
            raise BadInputError(f"not a PyTorch checkpoint: neither a zip archive nor a pickle{hint}", path=path,
                                fix="give a file written by torch.save, or an .onnx model")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadInputError(f"not a readable PyTorch checkpoint ({first_line(exc, 160)})", path=path,
                            fix="re-save or re-download the file") from exc
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED and (
                member.file_size > MAX_INFLATED_MEMBER or member.file_size > MAX_INFLATE_RATIO * max(
                    member.compress_size, 1)):
            raise BadInputError(f"'{member.filename}' inflates from {member.compress_size:,} to {member.file_size:,} "
                                "bytes: a zip bomb, not a checkpoint torch.save wrote", path=path,
                                fix="do not open this file; get the model from its author again")


def _looks_like_onnx(path: Path) -> bool:
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return bool(model.graph.node)


def _load_allow_listed(path: Path) -> Any:
    import torch

    check_container(path)
    if not _is_zip_checkpoint(path):
        return _load_legacy(path)
    needed = _unsafe_globals(path)
    allowed: dict[str, Any] = {name: _NARROWED.get(name) or _resolve_allowed(name) for name in needed}
    refused = sorted(name for name, cls in allowed.items() if cls is None)
    if refused:
        shown = ", ".join(refused[:4]) + (f" and {len(refused) - 4} more" if len(refused) > 4 else "")
        raise NeedsTrustError(f"the checkpoint asks to run code outside the allow-list ({shown})",
                              path=path, fix=TRUST_FIX)
    try:
        # (class, name-in-file) pairs: the file may name a class by an older or re-exported path.
        with _only_these_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise NeedsTrustError(f"the checkpoint needs more than plain weights ({_refused_global(exc)})",
                              path=path, fix=TRUST_FIX) from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        raise BadInputError(f"the checkpoint is damaged ({first_line(exc, 160)})", path=path,
                            fix="re-save or re-download the file") from exc


def _load_legacy(path: Path) -> Any:
    """Non-zip files: the pre-1.6 torch format or a bare pickle. weights_only refuses any code: torch's own
    allow-list only, whatever else the process registered (their globals cannot be listed before loading)."""
    import torch

    try:
        with _only_these_globals({}, exclusive=True):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = first_line(exc, 160)
        if "invalid load key" in message or "could not find MARK" in message:
            raise BadInputError("not a PyTorch checkpoint (no zip archive, no pickle)", path=path,
                                fix="give a file written by torch.save, or an .onnx model") from exc
        raise NeedsTrustError(f"the file is a pickle that asks for more than weights ({_refused_global(exc)})",
                              path=path, fix=TRUST_FIX) from exc
    except Exception as exc:
        raise BadInputError(f"not a readable PyTorch checkpoint ({type(exc).__name__}: {first_line(exc, 160)})",
                            path=path, fix="give a file written by torch.save, or an .onnx model") from exc
