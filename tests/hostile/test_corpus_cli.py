"""Every hostile file, through the real CLI: exit 2, one line naming the file, bounded time and memory,
and no payload executed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.engine.cli_helpers import run_cli
from tests.hostile.corpus import MODEL, Case

ROOT = Path(__file__).resolve().parents[2]
TOTAL_TIMEOUT_S = 600
CASE_BOUND_S = 20  # each case; the slowest seen here took 0.4 s
RSS_BOUND_MB = 200  # above the warmed-up peak; a 320 MB zip bomb or a 10^8-filter cfg would blow it


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("hostile")
    out = folder / "results.json"
    done = subprocess.run([sys.executable, "-m", "tests.hostile.run_cases", str(folder / "corpus"),
                           str(folder / "canary"), str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=TOTAL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    data["canary"] = folder / "canary"
    return data


def test_the_corpus_covers_every_accepted_format_with_40_or_more_cases(results):
    cases = results["cases"]
    assert len(cases) >= 40
    suffixes = Counter(Path(case["path"]).suffix for case in cases)
    for suffix in (".onnx", ".pt", ".pth", ".safetensors", ".yaml", ".cfg", ".gguf", ".tflite", ".mp4", ".toml", ""):
        assert suffixes[suffix] >= 1, f"no hostile {suffix or 'folder'} case"
    assert results["warmup_codes"] == [0, 0], "the warm-up models must load: the runner itself is broken"


def test_every_case_exits_2_with_one_line_naming_the_file(results):
    bad = []
    for case in results["cases"]:
        lines = [line for line in case["stderr"].splitlines() if line.strip()]
        named = len(lines) == 1 and case["path"] in lines[0] and lines[0].startswith("deploy-studio: error: ")
        if case["code"] != 2 or not named or "Traceback" in case["stderr"]:
            bad.append(f"{case['name']}: exit {case['code']}: {case['stderr'][-300:]!r}")
    assert not bad, "\n".join(bad)


def test_no_case_hangs_or_blows_up_memory(results):
    slow = [f"{c['name']}: {c['seconds']:.1f} s" for c in results["cases"] if c["seconds"] > CASE_BOUND_S]
    assert not slow, slow
    baseline = results["baseline_rss_mb"]
    greedy = [f"{c['name']}: peak {c['peak_rss_mb']:.0f} MB (after warm-up {baseline:.0f} MB)"
              for c in results["cases"] if c["peak_rss_mb"] > baseline + RSS_BOUND_MB]
    assert not greedy, greedy


def test_no_payload_ran(results):
    ran = [case["name"] for case in results["cases"] if case["canary_exists"]]
    assert not ran and not results["canary"].exists(), ran


def test_the_real_console_script_exits_2_on_a_sample(results):
    """The runner calls the same main() in one process; a few cases also go through the installed script."""
    cases = {case["name"]: Case(case["name"], Path(case["path"]), case["kind"]) for case in results["cases"]}
    sample = ("onnx cyclic graph", "pt pickle that runs a command", "gguf 2^60 tensors declared", "fifo named .onnx")
    for name in sample:
        case = cases[name]
        assert case.kind == MODEL
        done = run_cli(*case.command(), timeout=120)
        assert done.returncode == 2, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and str(case.path) in done.stderr, done.stderr
    assert not results["canary"].exists()
