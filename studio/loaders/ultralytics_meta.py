"""The metadata Ultralytics writes into an exported file (task, class names, image size, stride), read
defensively: the values are Python literals in text, from a file that may come from anyone.

Each field is parsed with ``ast.literal_eval`` (never ``eval``) after a length bound, and checked for
its type and range; anything else is a one-line BadInputError naming the field.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import BadInputError, UnsupportedError
from studio.loaders.ultralytics_support import REFUSED_TASKS, SUPPORTED, check_onnx_head
from studio.model import Task

MAX_FIELD_CHARS = 1 << 20  # 1 MB of text: far above 80 class names, far below a parser-choking blob
MAX_SIDE = 8192
_FIX = "re-export the model with Ultralytics (its metadata is written by model.export)"


@dataclass(frozen=True)
class UltralyticsMeta:
    task: Task
    labels: tuple[str, ...]
    imgsz: tuple[int, int]
    stride: int
    version: str


def _literal(meta: dict[str, str], key: str, path: Path) -> Any:
    text = meta[key]
    if len(text) > MAX_FIELD_CHARS:
        raise BadInputError(f"metadata '{key}' is {len(text):,} characters long", path=path, fix=_FIX)
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise BadInputError(f"metadata '{key}' is not a readable value ({type(exc).__name__})", path=path,
                            fix=_FIX) from exc


def _labels(value: Any, path: Path) -> tuple[str, ...]:
    if isinstance(value, dict):
        try:
            keys = sorted(value, key=int)
        except (ValueError, TypeError):
            raise BadInputError("metadata 'names' must map class indices to names", path=path, fix=_FIX) from None
        return tuple(str(value[key])[:200] for key in keys)
    if isinstance(value, (list, tuple)):
        return tuple(str(name)[:200] for name in value)
    raise BadInputError(f"metadata 'names' is a {type(value).__name__}, not a list or a mapping of names", path=path,
                        fix=_FIX)


def _imgsz(value: Any, path: Path) -> tuple[int, int]:
    sides = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_SIDE
                                  for s in sides):
        raise BadInputError(f"metadata 'imgsz' is {str(value)[:60]}, not one or two sizes from 1 to {MAX_SIDE}",
                            path=path, fix=_FIX)
    return sides[0], sides[1]


def parse_ultralytics_meta(meta: dict[str, str], path: Path) -> UltralyticsMeta:
    task_text = meta.get("task", "detect")
    if task_text in REFUSED_TASKS:  # a real Ultralytics task the studio does not run: not a damaged file
        raise UnsupportedError(REFUSED_TASKS[task_text], path=path, fix=SUPPORTED)
    check_onnx_head(meta.get("head"), path)
    try:
        task = Task(task_text)
    except ValueError:
        tasks = ", ".join(t.value for t in Task)
        raise BadInputError(f"metadata 'task' is {task_text[:40]!r}, not one of {tasks}", path=path,
                            fix=_FIX) from None
    labels = _labels(_literal(meta, "names", path), path) if "names" in meta else ()
    imgsz = _imgsz(_literal(meta, "imgsz", path), path) if "imgsz" in meta else (640, 640)
    stride = _literal(meta, "stride", path) if "stride" in meta else 32
    if not isinstance(stride, int) or isinstance(stride, bool) or not 1 <= stride <= 256:
        raise BadInputError(f"metadata 'stride' is {str(stride)[:40]}, not a stride from 1 to 256", path=path,
                            fix=_FIX)
    return UltralyticsMeta(task, labels, imgsz, stride, meta.get("version", "?")[:40])
