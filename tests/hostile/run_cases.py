"""Run every hostile case through the real CLI entry point (studio.cli.main) in this one process.

``python -m tests.hostile.run_cases CORPUS CANARY OUT.json``: writes one record per case (exit code,
what it printed on stderr, seconds, peak RSS). One process for all cases keeps the suite fast (the
imports are paid once); the test that starts it bounds its total time, and SIGALRM bounds each case.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import signal
import sys
import time
from pathlib import Path

CASE_TIMEOUT_S = 60


class CaseTimeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise CaseTimeout()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_one(argv: list[str]) -> dict:
    from studio.cli import main

    stderr, stdout = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    signal.alarm(CASE_TIMEOUT_S)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = main(argv)
    except CaseTimeout:
        code = "timeout"
    except BaseException as exc:
        code = f"escaped: {type(exc).__name__}: {exc}"[:300]
    finally:
        signal.alarm(0)
    return {"code": code, "stderr": stderr.getvalue(), "seconds": time.perf_counter() - started,
            "peak_rss_mb": _peak_rss_mb()}


def main(argv: list[str]) -> int:
    from tests.hostile.corpus import build_corpus

    corpus, canary, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    signal.signal(signal.SIGALRM, _alarm)
    cases = build_corpus(corpus, canary)
    # Warm-up: the imports and a model of each kind the commands use, so the peak RSS measured after
    # it is what the hostile files add, not what the first import of torch costs.
    from tests.hostile.corpus import _conv_model

    warm = corpus / "warm.onnx"
    warm.write_bytes(_conv_model().SerializeToString())
    baseline = [run_one(["info", str(warm)]), run_one(["info", "zoo:yolov8n-random"])]
    records = {"baseline_rss_mb": _peak_rss_mb(), "warmup_codes": [r["code"] for r in baseline], "cases": []}
    for case in cases:
        record = run_one(case.command())
        record.update(name=case.name, path=str(case.path), kind=case.kind, canary_exists=canary.exists())
        records["cases"].append(record)
    out.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
