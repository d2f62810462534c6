"""What a ``.tflite`` file says about itself beyond its tensors: operators, weights, TFLite metadata, zip entries.

Read from the flatbuffer with the schema module that ships inside ai_edge_litert (``schema_py_generated``),
never through TensorFlow. The interpreter's own ``_get_ops_details`` is not used for the histogram: after
XNNPACK has taken over it reports one DELEGATE node instead of the file's operators, and it sees only the
first subgraph.

The ``TFLITE_METADATA`` buffer (the TFLite Support schema, file identifier ``M001``) has no reader in the
installed runtime packages (only mediapipe's wheel carries a generated module, and the studio does not depend
on it), so the few fields shown are read here with ``flatbuffers``' table reader, by their schema slots. The
file may come from anyone: each string is bounded and any malformed table yields "unreadable", not a crash.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_TEXT = 300  # a description line, not a document
MAX_JSON_BYTES = 1 << 20  # Ultralytics' metadata.json is ~2 KB; far larger is not metadata
MAX_ENTRIES = 64
CUSTOM = 32  # BuiltinOperator.CUSTOM
PLACEHOLDER_FOR_GREATER_OP_CODES = 127  # old files keep codes above 127 only in builtin_code


@dataclass
class FlatbufferFacts:
    """What the schema reading found."""

    operators: Counter[str] = field(default_factory=Counter)
    custom_ops: tuple[str, ...] = ()
    params: int = 0
    weight_tensors: int = 0
    weight_dtypes: Counter[str] = field(default_factory=Counter)
    subgraphs: int = 0
    description: str = ""
    metadata_names: tuple[str, ...] = ()
    spec_metadata: dict[str, Any] = field(default_factory=dict)  # the TFLITE_METADATA fields read


def _text(value: bytes | None) -> str:
    return "" if value is None else " ".join(value.decode("utf-8", "replace").split())[:MAX_TEXT]


def read_flatbuffer(data: bytes) -> FlatbufferFacts:
    """Operators, constant tensors and metadata entries of a model the interpreter has already verified."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    type_names = {value: key.lower() for key, value in vars(schema.TensorType).items() if not key.startswith("_")}
    model = schema.Model.GetRootAs(data, 0)
    codes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        codes.append(f"custom {_text(code.CustomCode())}" if builtin == CUSTOM else names.get(builtin, f"op{builtin}"))
    facts = FlatbufferFacts(subgraphs=model.SubgraphsLength(), description=_text(model.Description()))
    counted: set[int] = set()
    for sub_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(sub_index)
        for op_index in range(subgraph.OperatorsLength()):
            opcode = subgraph.Operators(op_index).OpcodeIndex()
            facts.operators[codes[opcode] if opcode < len(codes) else f"opcode{opcode}"] += 1
        for tensor_index in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(tensor_index)
            buffer_index = tensor.Buffer()
            if buffer_index <= 0 or buffer_index in counted or buffer_index >= model.BuffersLength():
                continue
            buffer = model.Buffers(buffer_index)
            if buffer.DataLength() == 0 and buffer.Offset() <= 1:  # no bytes: an activation, not a constant
                continue
            counted.add(buffer_index)
            facts.params += math.prod(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
            facts.weight_tensors += 1
            facts.weight_dtypes[type_names.get(tensor.Type(), f"type{tensor.Type()}")] += 1
    facts.custom_ops = tuple(sorted({name.removeprefix("custom ") for name in facts.operators
                                     if name.startswith("custom ")}))
    entries = []
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        name = _text(entry.Name())
        entries.append(name)
        if name == "TFLITE_METADATA" and 0 < entry.Buffer() < model.BuffersLength():
            buffer = model.Buffers(entry.Buffer())
            if buffer.DataLength():
                facts.spec_metadata = read_spec_metadata(buffer.DataAsNumpy().tobytes())
    facts.metadata_names = tuple(entries)
    return facts


# Slots (field numbers) of the TFLite Support metadata schema (metadata_schema.fbs).
_MODEL = {"name": 0, "description": 1, "version": 2, "subgraphs": 3, "author": 4, "license": 5, "files": 6}
_SUBGRAPH = {"inputs": 2, "files": 4}
_TENSOR = {"name": 0, "process_units": 4, "files": 6}
_NORMALIZATION = 1  # ProcessUnitOptions.NormalizationOptions: table {mean: [float]; std: [float]}


class _Table:
    """A flatbuffers table read by slot number, with the bounds checks a hostile buffer needs."""

    def __init__(self, data: bytearray, pos: int):
        from flatbuffers.table import Table  # type: ignore[import-untyped,unused-ignore]

        self.data, self.table = data, Table(data, pos)

    def _offset(self, slot: int) -> int:
        return int(self.table.Offset(4 + 2 * slot))

    def string(self, slot: int) -> str:
        offset = self._offset(slot)
        return _text(bytes(self.table.String(offset + self.table.Pos))) if offset else ""

    def tables(self, slot: int) -> list[_Table]:
        offset = self._offset(slot)
        if not offset:
            return []
        start = self.table.Vector(offset)
        count = min(self.table.VectorLen(offset), MAX_ENTRIES)
        return [_Table(self.data, self.table.Indirect(start + 4 * i)) for i in range(count)]

    def table_at(self, slot: int) -> _Table | None:
        offset = self._offset(slot)
        return _Table(self.data, self.table.Indirect(offset + self.table.Pos)) if offset else None

    def byte(self, slot: int) -> int:
        from flatbuffers import number_types  # type: ignore[import-untyped,unused-ignore]

        offset = self._offset(slot)
        return int(self.table.Get(number_types.Uint8Flags, offset + self.table.Pos)) if offset else 0

    def floats(self, slot: int) -> list[float]:
        from flatbuffers import number_types  # type: ignore[import-untyped,unused-ignore]

        offset = self._offset(slot)
        if not offset:
            return []
        start = self.table.Vector(offset)
        return [float(self.table.Get(number_types.Float32Flags, start + 4 * i))
                for i in range(min(self.table.VectorLen(offset), MAX_ENTRIES))]


def read_spec_metadata(data: bytes) -> dict[str, Any]:
    """name, description, version, author, licence, associated file names and the first input's
    normalisation (mean, std per channel) of a ``TFLITE_METADATA`` buffer; ``{"unreadable": reason}``
    when the buffer is not that table."""
    from flatbuffers import encode, packer  # type: ignore[import-untyped,unused-ignore]

    if len(data) < 8 or data[4:8] != b"M001":
        return {"unreadable": "no M001 identifier"}
    try:
        root = _Table(bytearray(data), int(encode.Get(packer.uoffset, data, 0)))
        found: dict[str, Any] = {key: root.string(slot) for key, slot in _MODEL.items()
                                 if key not in ("subgraphs", "files")}
        files = [f.string(0) for f in root.tables(_MODEL["files"])]
        for subgraph in root.tables(_MODEL["subgraphs"]):
            files += [f.string(0) for f in subgraph.tables(_SUBGRAPH["files"])]
            for tensor in subgraph.tables(_SUBGRAPH["inputs"])[:1]:
                found.setdefault("input_name", tensor.string(_TENSOR["name"]))
                for unit in tensor.tables(_TENSOR["process_units"]):
                    options = unit.table_at(1)
                    if unit.byte(0) == _NORMALIZATION and options is not None:
                        found["normalization"] = {"mean": options.floats(0), "std": options.floats(1)}
            for tensor in subgraph.tables(3):  # output tensors: their label files
                files += [f.string(0) for f in tensor.tables(_TENSOR["files"])]
        found["associated_files"] = [name for name in dict.fromkeys(files) if name]
    except (IndexError, ValueError, OverflowError, TypeError, struct.error) as exc:  # a malformed table
        return {"unreadable": type(exc).__name__}
    return {key: value for key, value in found.items() if value}


def read_zip_entries(path: Path) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(entry names, each JSON entry that holds an object) of the zip appended to the flatbuffer: Ultralytics'
    ``metadata.json``, the studio's ``deploy_studio.json``, label files (listed by name only)."""
    if not zipfile.is_zipfile(path):
        return [], {}
    found: dict[str, dict[str, Any]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()[:MAX_ENTRIES]
            for info in infos:
                if info.filename.endswith(".json") and info.file_size <= MAX_JSON_BYTES:
                    with archive.open(info) as entry:
                        value = json.loads(entry.read(MAX_JSON_BYTES + 1))
                    if isinstance(value, dict):
                        found[info.filename[:MAX_TEXT]] = value
    except (zipfile.BadZipFile, ValueError, OSError, RecursionError, NotImplementedError, EOFError):
        return [], {}
    return [info.filename[:MAX_TEXT] for info in infos], found
