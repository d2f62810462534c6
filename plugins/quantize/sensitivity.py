"""Which parts of a graph INT8 hurts: quantize one unit at a time and measure the fidelity drop.

A unit is a block (the first two segments of a node's name, such as ``/model.22``) split into its
weight layers (Conv, MatMul, Gemm) and everything else, or, at "node" granularity, each weight layer
alone. Names come from the exporter, so the grouping works on any graph, not only YOLO's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WEIGHT_OPS = {"Conv", "MatMul", "Gemm", "ConvTranspose"}
SKIPPED_OPS = {"Constant", "Shape", "Reshape", "Gather", "Unsqueeze", "Squeeze", "Cast", "Range", "Slice",
               "ConstantOfShape", "Identity", "Flatten", "Transpose", "Split", "Expand"}


def block_of(name: str) -> str:
    parts = name.split("/")
    return "/".join(parts[:2]) if name.startswith("/") and len(parts) > 2 else name


def quant_units(graph: Any, granularity: str = "block") -> dict[str, list[str]]:
    """Unit name → node names, in graph order."""
    units: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type in SKIPPED_OPS or not node.name:
            continue
        block = block_of(node.name)
        if node.op_type in WEIGHT_OPS:
            key = node.name if granularity == "node" else f"{block} [weights]"
        else:
            key = f"{block} [other]"
        units.setdefault(key, []).append(node.name)
    return units


def rank_units(units: dict[str, list[str]], score_only: Callable[[list[str]], float], baseline: float,
               ctx: Any) -> list[dict[str, Any]]:
    """Fidelity drop when only each unit is quantized, most harmful first."""
    rows: list[dict[str, Any]] = []
    for index, (unit, nodes) in enumerate(units.items()):
        ctx.progress(index / len(units), f"sensitivity {index + 1}/{len(units)}: {unit}")
        value = score_only(nodes)
        rows.append({"unit": unit, "nodes": len(nodes), "fidelity_alone": round(value, 4),
                     "drop": round(baseline - value, 4)})
    rows.sort(key=lambda r: (-r["drop"], r["unit"]))
    return rows
