"""Trials whose recipes differ but whose graphs are the same bytes: judged and timed once per host.

Different recipes can build one graph (every mixed-INT8 target from 0.90 to 0.99 kept the same units in float
on one search: 18 of its 28 complete trials were one variant, each judged and timed again). A trial hashes its
graphs once they are built; when an earlier trial of the same search on the same host built the same bytes,
it takes that trial's figures (``same_graph_as``) instead of judging and timing them again. The memo is a
folder of small JSON files in this host's temp folder, one per search, removed when the search ends; a trial
on another host, or one running at the same time as its twin, measures for itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from studio.atomic import write_text_atomic
from studio.hashing import sha256_file

# What a twin's result lends: its judgement and its timing, never its build (that was this trial's own)
LENT = ("state", "reason", "quick_fidelity", "choosing_fidelity", "fidelity", "latency_ms", "bench")


def graph_digest(graphs: list[Path]) -> str:
    """sha256 over the graphs' bytes and the external weight files they name, in order (not their names, which
    follow the recipe): equal only for the same files."""
    return sha256_file(*(file for graph in graphs for file in (graph, *_external_files(graph))))


def _external_files(graph: Path) -> list[Path]:
    """The files a graph keeps its weights in beside it (ONNX external data), so that two graphs of one
    structure with other weights never look the same."""
    import onnx

    try:
        model = onnx.load(str(graph), load_external_data=False)
    except Exception:  # not an ONNX file this onnx reads: its own bytes are all there is to compare
        return []
    names = {entry.value for tensor in model.graph.initializer
             if tensor.data_location == onnx.TensorProto.EXTERNAL
             for entry in tensor.external_data if entry.key == "location"}
    return [graph.parent / name for name in sorted(names) if (graph.parent / name).is_file()]


def search_key(out_dir: Path, spec: dict[str, Any], identity: dict[str, Any]) -> str:
    """One search (its folder, spec, model and data): a resumed search finds its own memo, no other does."""
    text = json.dumps({"out": str(out_dir), "spec": spec, "identity": identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _folder(key: str, root: Path | None = None) -> Path:
    return (root or Path(tempfile.gettempdir())) / "deploy-studio-search" / "graphs" / key


def recall(key: str, digest: str, root: Path | None = None) -> dict[str, Any] | None:
    """The figures of an earlier trial of this search with these graphs on this host, with its number."""
    path = _folder(key, root) / f"{digest}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or a file being replaced: measure
        return None


def remember(key: str, digest: str, number: int, result: dict[str, Any], root: Path | None = None) -> None:
    """Keep a judged (complete or pruned) trial's figures for its twins; a failed trial lends nothing."""
    if result.get("state") not in ("complete", "pruned") or "same_graph_as" in result:
        return
    folder = _folder(key, root)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"number": number, **{k: result[k] for k in LENT if k in result}}
    write_text_atomic(folder / f"{digest}.json", json.dumps(entry))


def lend(twin: dict[str, Any]) -> dict[str, Any]:
    """What a trial reports from its twin: the twin's figures and which trial measured them."""
    return {k: twin[k] for k in LENT if k in twin} | {"same_graph_as": twin["number"]}


def forget(key: str, root: Path | None = None) -> None:
    """Remove this search's memo on this host (at the end of a run; a resume measures its first twins again)."""
    shutil.rmtree(_folder(key, root), ignore_errors=True)
