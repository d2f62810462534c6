"""Rows of a search's trials, and its Pareto front among the variants that reach the target."""

from __future__ import annotations

from typing import Any


def objective_values(row: dict[str, Any], objectives: tuple[str, ...]) -> list[float]:
    return [row["latency_p50_ms"] if name == "latency" else row["size_mb"] for name in objectives]


def mark_front(rows: list[dict[str, Any]], objectives: tuple[str, ...]) -> list[dict[str, Any]]:
    """Set ``on_front`` on each row: complete, at the target, and not dominated by another such row. A trial
    whose graphs were an earlier trial's (``same_graph_as``) is that variant again: drawn, never on the front."""
    feasible = [r for r in rows if r["state"] == "complete" and r.get("feasible") and r.get("same_graph_as") is None]
    for row in rows:
        row["on_front"] = False
    for row in feasible:
        mine = objective_values(row, objectives)
        row["on_front"] = not any(
            all(a <= b for a, b in zip(theirs, mine, strict=True)) and theirs != mine
            for theirs in (objective_values(other, objectives) for other in feasible if other is not row))
    return rows


def best(rows: list[dict[str, Any]], objectives: tuple[str, ...]) -> dict[str, Any] | None:
    """The fastest (or smallest, when size is the only objective) variant that reaches the target."""
    feasible = [r for r in rows if r["state"] == "complete" and r.get("feasible")]
    return min(feasible, key=lambda r: objective_values(r, objectives)) if feasible else None
