"""The metadata every file the studio writes carries, and the reader that turns it back into the model it is.

Ultralytics' keys (``task``, ``names``, ``imgsz``, ``stride``) come first so that other tools read our files;
the ``deploy_studio.*`` keys carry what those cannot say: the exact pre-processing (a Darknet model stretches,
an ImageNet classifier crops the centre and normalises by its own mean and scale) and the decoder (a Darknet
head's rows are not an Ultralytics head's). Without them a re-opened export would run a different pipeline.
The values come from files that may come from anyone: each is bounded, parsed as JSON and checked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from studio.atomic import staged_file
from studio.errors import BadInputError
from studio.model import ImageInput, ModelHandle, Resize
from studio.runtime.choice import RuntimeMode, runtime_mode

PREPROCESS_KEY = "deploy_studio.preprocess"
DECODER_KEY = "deploy_studio.decoder"
VERSION_KEY = "deploy_studio.version"
RUNTIME_MODE_KEY = "deploy_studio.runtime_mode"
MAX_VALUE_CHARS = 64 * 1024  # an ImageInput is ~250 characters; anything near this is not one
MAX_SIDE = 8192
OWN_FIX = "re-export the model with Deploy Studio, or remove its 'deploy_studio.*' metadata to open it as a plain graph"


def artifact_metadata(model: ModelHandle) -> dict[str, str]:
    """Plain strings every exported file carries (Ultralytics' keys, so other tools read them too)."""
    from studio import __version__

    image = model.image_input
    meta: dict[str, str] = {
        "author": "Deploy Studio",
        "description": f"{model.display_name} exported by Deploy Studio {__version__}",
        "task": str(model.task),
        "names": repr(dict(enumerate(model.labels))),
        VERSION_KEY: __version__,
        "deploy_studio.source_sha256": model.metadata.get("parent_sha256") or model.provenance.sha256,
        "deploy_studio.recipe": model.metadata.get("recipe", ""),
        DECODER_KEY: model.decoder,
        # What a task's decoder needs and the output shapes cannot always tell ([17, 3] vs [51, 1] keypoints;
        # an end-to-end OBB head's rows; an RT-DETR head's [1, 300, 6] rows), under Ultralytics' own keys.
        **{key: model.metadata[key] for key in ("kpt_shape", "end2end", "mask_channels", "head")
           if key in model.metadata},
    }
    if image is not None:
        meta |= {"imgsz": json.dumps(list(image.size)), "stride": str(image.stride),
                 PREPROCESS_KEY: json.dumps(image.as_dict())}
    if runtime_mode(model) is not RuntimeMode.PLAIN:
        meta[RUNTIME_MODE_KEY] = model.metadata["runtime_mode"]
        meta["deploy_studio.runtime_settings"] = model.metadata.get("runtime_settings", "")
    return meta


def is_studio_metadata(meta: Mapping[str, str]) -> bool:
    """Whether a file's metadata was written by the studio (any version), so its own keys are read first."""
    return VERSION_KEY in meta or PREPROCESS_KEY in meta


def _refuse(what: str, path: str | Path | None) -> BadInputError:
    return BadInputError(f"metadata '{PREPROCESS_KEY}' {what}", path=path, fix=OWN_FIX)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _size(value: Any, path: str | Path | None) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(side, 1, MAX_SIDE) for side in value)):
        raise _refuse(f"has size {str(value)[:60]}, not [height, width] from 1 to {MAX_SIDE}", path)
    return value[0], value[1]


# Each field's check (on the JSON value) and what the refusal says it should be.
_CHECKS: dict[str, tuple[Any, str]] = {
    "rgb": (lambda v: isinstance(v, bool), "true or false"),
    "dynamic": (lambda v: isinstance(v, bool), "true or false"),
    "mean": (_is_number, "a finite number"),
    "scale": (lambda v: _is_number(v) and v != 0, "a finite number other than 0"),
    "stride": (lambda v: _is_int(v, 1, 256), "a stride from 1 to 256"),
    "pad_value": (lambda v: _is_int(v, 0, 255), "a pixel value from 0 to 255"),
    "crop_fraction": (lambda v: _is_number(v) and 0 < v <= 1, "a fraction in (0, 1]"),
}


def image_input_from_metadata(meta: Mapping[str, str], path: str | Path | None = None, *,
                              default_size: tuple[int, int] | None = None) -> ImageInput | None:
    """The ``ImageInput`` that ``deploy_studio.preprocess`` describes, or None when the file has none.

    A missing field takes ``ImageInput``'s default (the size: ``default_size``, else the file's ``imgsz``, else
    640×640); an unknown one is ignored (a newer studio may add fields); a malformed one is refused, naming ``path``.
    """
    text = meta.get(PREPROCESS_KEY)
    if text is None:
        return None
    if len(text) > MAX_VALUE_CHARS:
        raise _refuse(f"is {len(text):,} characters long", path)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _refuse(f"is not JSON ({type(exc).__name__})", path) from None
    if not isinstance(data, dict):
        raise _refuse(f"is a JSON {type(data).__name__}, not an object", path)
    fields: dict[str, Any] = {}
    for key, (valid, expected) in _CHECKS.items():
        if key in data:
            if not valid(data[key]):
                raise _refuse(f"has {key} {str(data[key])[:40]}, not {expected}", path)
            fields[key] = data[key]
    if "resize" in data:
        try:
            fields["resize"] = Resize(data["resize"])
        except ValueError:
            choices = ", ".join(r.value for r in Resize)
            raise _refuse(f"has resize {str(data['resize'])[:40]!r}, not one of {choices}", path) from None
    if "size" in data:
        size = _size(data["size"], path)
    elif default_size is not None:
        size = default_size
    else:
        size = _size(_imgsz(meta), path) if "imgsz" in meta else (640, 640)
    return ImageInput(size=size, **fields)


def _imgsz(meta: Mapping[str, str]) -> Any:
    try:
        value = json.loads(meta["imgsz"][:200])
    except ValueError:
        return meta["imgsz"][:60]  # shown in the refusal
    return [value, value] if isinstance(value, int) and not isinstance(value, bool) else value


def write_onnx_metadata(path: Path, meta: Mapping[str, str]) -> None:
    """Set ``meta`` on the ONNX file at ``path`` (other keys kept), atomically.

    Weights stored in external data files are not loaded: the rewritten graph names the same files, and is
    staged in the same folder so that their relative locations still resolve.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    existing = {prop.key: prop for prop in model.metadata_props}
    for key, value in meta.items():
        prop = existing[key] if key in existing else model.metadata_props.add(key=key)
        prop.value = value
    with staged_file(Path(path), suffix=".onnx") as staged:
        onnx.save(model, str(staged))
