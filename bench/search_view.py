"""The Search tab's cost on the GUI thread: its redraw per poll, for a real search folder scaled to N trials.

The tab reads a search folder's rows (``read_rows``: Optuna's SQLite study) on a worker thread about once a second
and redraws on the GUI thread only when they changed; this times both. The rows are the folder's first trial
copied N times with other numbers, latencies, fidelities and states (a third each complete, pruned, failed), so
the table and the plot hold N real-shaped rows.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/search_view.py FOLDER [--trials 20 100 300]

FOLDER: a search's results folder (``deploy-studio search MODEL --spec S.toml -o FOLDER``) with a trial in it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from typing import Any


def scaled(summary: dict[str, Any], n: int) -> dict[str, Any]:
    rows = []
    for i in range(n):
        row = copy.deepcopy(summary["trials"][0])
        row.update(number=i, latency_p50_ms=10 + i * 0.1, fidelity=0.5 + i / 1000,
                   state=("complete", "pruned", "failed")[i % 3], feasible=i % 2 == 0, on_front=i % 7 == 0)
        rows.append(row)
    return dict(summary, trials=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 100, 300])
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication([])  # noqa: F841 - the widgets need it
    from studio.registry import default_registry
    from studio.search.driver import read_rows
    from studio.search.spec import load_spec
    from ui.search_panel import SearchPanel

    panel = SearchPanel(default_registry())
    panel.show()
    panel.folder, panel.shown_spec = args.folder, load_spec(args.folder / "search.toml")
    summary = read_rows(args.folder)
    reads = []
    for _ in range(10):
        clock = time.perf_counter()
        read_rows(args.folder)
        reads.append((time.perf_counter() - clock) * 1e3)
    print(f"read_rows (on a worker thread): median {statistics.median(reads):.1f} ms of 10")
    for n in args.trials:
        panel._show(None)
        summaries = [scaled(summary, n + k) for k in range(6)]
        clock = time.perf_counter()
        panel._show(summaries[0])
        first = (time.perf_counter() - clock) * 1e3
        more = []
        for later in summaries[1:]:
            clock = time.perf_counter()
            panel._show(later)
            more.append((time.perf_counter() - clock) * 1e3)
        print(f"{n} trials: first draw {first:.1f} ms; a poll with one more trial (plot + changed rows) "
              f"median {statistics.median(more):.1f} ms of 5")


if __name__ == "__main__":
    main()
