"""TensorFlow frozen graphs (``.pb``) and SavedModel folders, read by OpenVINO's TensorFlow frontend (no
TensorFlow installed) and opened as the OpenVINO IR it converts them to.

The conversion is cached in the studio's cache folder, keyed by the file's SHA-256 and the OpenVINO version:
a large graph converts once. A graph whose input sizes are left open (other than the batch, which is set to 1)
is refused: the studio cannot guess an image size for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.errors import BadInputError
from studio.hashing import sha256_file
from studio.loaders.openvino_ir import describe_ir, ov_reason, port_specs
from studio.model import ModelHandle
from studio.paths import cache_dir

_SHAPE_FIX = "re-export with a fixed input shape, or convert with `ovc --input` and open the IR"
# GraphDef's top-level fields: node (1), versions (4), version (3, deprecated), library (2), debug_info (5).
_GRAPHDEF_FIELDS = {1: 2, 2: 2, 3: 0, 4: 2, 5: 2}


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("a varint runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field of a protobuf message; ValueError when the
    bytes are not one."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, end = _varint(data, pos)
            start = pos
        elif wire == 2:
            size, start = _varint(data, pos)
            end = start + size
        elif wire in (1, 5):
            start, end = pos, pos + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"wire type {wire}")
        if number == 0 or end > len(data):
            raise ValueError("a field runs past the end")
        yield number, wire, start, end
        pos = end


def check_graphdef(path: Path) -> int:
    """The number of nodes of the GraphDef in ``path``; a file that is not one is refused in one line.

    Checked before OpenVINO sees it: its frontend answers anything else with pages of native log lines on stderr.
    """
    refusal = BadInputError("not a TensorFlow frozen graph (a GraphDef protobuf)", path=path,
                            fix="give a frozen .pb graph or a SavedModel folder; other .pb files (ONNX tensors, "
                                "SavedModel's own saved_model.pb alone) are not models")
    data = memoryview(path.read_bytes())
    nodes = 0
    try:
        for number, wire, start, end in _fields(data):
            if _GRAPHDEF_FIELDS.get(number) != wire:
                raise ValueError(f"field {number}")
            if number == 1:
                node = {n: (s, e) for n, w, s, e in _fields(data[start:end]) if w == 2 and n in (1, 2)}
                if 1 not in node or 2 not in node:
                    raise ValueError("a node without a name or an operation")
                bytes(data[start:end][node[2][0]:node[2][1]]).decode("ascii")
                nodes += 1
    except (ValueError, UnicodeDecodeError):
        raise refusal from None
    if not nodes:
        raise refusal
    return nodes


@contextlib.contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (OpenVINO's frontends log there), for the refusal."""
    captured: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a GUI started without one): nothing to capture
        yield captured
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.extend(sink.read(1 << 16).decode("utf-8", "replace").splitlines())


def _convert(source: Path) -> Any:
    import openvino as ov

    with _native_stderr():
        try:
            return ov.convert_model(str(source))
        except Exception as exc:  # the frontends raise OpConversionFailure, GeneralFailure, RuntimeError…
            raise BadInputError(f"OpenVINO cannot convert this TensorFlow graph ({ov_reason(exc)})", path=source,
                                fix="check that it is a frozen graph or a SavedModel with its variables/ folder; "
                                    "or convert it with `ovc` and open the IR") from exc


def _fix_batch(model: Any, path: Path) -> bool:
    """Set a dynamic batch (first) dimension to 1; refuse any other open dimension. True when reshaped."""
    import openvino as ov

    shapes = {}
    for spec, port in zip(port_specs(model.inputs), model.inputs, strict=True):
        partial = port.get_partial_shape()
        if partial.rank.is_dynamic or "?" in spec.shape[1:]:
            shown = "unknown rank" if partial.rank.is_dynamic else "×".join(map(str, spec.shape))
            raise BadInputError(f"the graph leaves the shape of input '{spec.name}' undefined ({shown}); the studio "
                                "cannot choose its sizes", path=path, fix=_SHAPE_FIX)
        if spec.shape and spec.shape[0] == "?":
            shapes[port] = ov.PartialShape([1, *spec.shape[1:]])
    if shapes:
        model.reshape(shapes)
    return bool(shapes)


def _cached_ir(source: Path, digest: str) -> tuple[Path, bool]:
    """The cached IR of ``source`` (converting it when absent) and whether its batch was set to 1."""
    import openvino as ov

    key = f"{digest[:16]}-ov{ov.__version__.split('-')[0]}"
    folder = cache_dir() / "openvino" / f"{source.stem if source.is_file() else source.name}-{key}"
    xml, flag = folder / "model.xml", folder / "batch_fixed"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml, flag.is_file()
    model = _convert(source)
    reshaped = _fix_batch(model, source)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".convert-") as tmp:
        staged = Path(tmp) / "ir"
        staged.mkdir()
        ov.save_model(model, str(staged / "model.xml"), compress_to_fp16=False)
        if reshaped:
            (staged / "batch_fixed").write_text("1\n")
        with contextlib.suppress(OSError):  # another process converted it meanwhile: theirs is the same IR
            os.replace(staged, folder)
    return xml, (folder / "batch_fixed").is_file()


def _source_files(path: Path) -> tuple[Path, ...]:
    if path.is_file():
        return (path,)
    return tuple(sorted(p for p in path.rglob("*") if p.is_file()))


def load(path: Path, *, trust: bool = False) -> ModelHandle:
    import openvino as ov

    if path.is_file():
        nodes = check_graphdef(path)
        kind = f"TensorFlow frozen graph ({nodes} nodes)"
    elif (path / "saved_model.pb").is_file():
        kind = "TensorFlow SavedModel"
    else:
        raise BadInputError("the folder holds no saved_model.pb", path=path,
                            fix="give a SavedModel folder (saved_model.pb with variables/) or a frozen .pb graph")
    files = _source_files(path)
    digest = sha256_file(*files)
    xml, batch_fixed = _cached_ir(path, digest)
    model = ov.Core().read_model(str(xml))
    note = f"{kind} converted to OpenVINO IR by OpenVINO {ov.__version__.split('-')[0]} (cached)" + (
        "; its open batch dimension set to 1" if batch_fixed else "") + "; "
    handle = describe_ir(model, name=path.stem, path=path, files=(xml, xml.with_suffix(".bin")), folder=None,
                         loader="tensorflow", note_prefix=note)
    provenance = dataclasses.replace(handle.provenance, sha256=digest)
    return handle.replace(provenance=provenance, source_paths=(*handle.source_paths, *files),
                          size_bytes=sum(p.stat().st_size for p in files))
