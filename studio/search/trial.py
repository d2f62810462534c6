"""One trial: build a variant from its recipe, judge it against the model, time it in the machine's slot.

A plain function with plain-data arguments and result, so that it runs the same in a Ray worker here or on a
cluster node. Errors are results ("failed" with the one-line reason), never exceptions: one trial's bad luck
is not the search's.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from studio.errors import StudioError, first_line

_LOADED: dict[tuple[str, str | None], Any] = {}  # per worker process: the base model, loaded once
WORKDIR_PREFIX = "deploy-studio-trial-"  # + the worker's pid + "-": whose folder it is, for the sweep


def sweep_stale_workdirs(root: str | None = None) -> list[str]:
    """Remove the trial folders of worker processes that are gone, and return their names.

    A worker killed mid-trial (a cancelled search, an out-of-memory kill) never runs its ``finally``, so
    its folder (the variant's graphs, often hundreds of MB) would stay in the temp folder for good. Every
    trial, and the driver when a search ends, sweeps this host's. A pid that was reused looks alive and
    its folder waits for a later sweep: never a live trial's folder removed."""
    import psutil

    swept = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        pid = path.name[len(WORKDIR_PREFIX):].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path.name)
    return swept


def _twin(job: dict[str, Any], graphs: list[Path], out: dict[str, Any]) -> dict[str, Any] | None:
    """An earlier trial's figures when it built these very graphs on this host (``graph_memo``); records the
    graphs' digest in ``out`` either way, so that this trial's figures can be lent in turn."""
    from studio.search.graph_memo import graph_digest, lend, recall

    out["graph_sha256"] = graph_digest(graphs)
    twin = recall(job["search_key"], out["graph_sha256"]) if job.get("search_key") else None
    return lend(twin) if twin is not None else None


def _base_model(job: dict[str, Any], model_blob: bytes | None) -> Any:
    from studio.loaders import load_model
    from studio.search.payload import Packed, unpack

    packed = Packed(**job["model"])
    key = (packed.name, packed.sha256)
    if key not in _LOADED:
        _LOADED[key] = load_model(unpack(packed, model_blob), trust=job.get("trust", False))
    return _LOADED[key]


def run_trial(job: dict[str, Any], model_blob: bytes | None = None, data_blob: bytes | None = None) -> dict[str, Any]:
    """``job``: number, recipe (as_dict), spec (as_dict), model and data (``Packed`` fields), trust.

    Returns state ("complete", "pruned" or "failed"), fidelity (full or quick), latency (``deploy-studio bench``'s
    report of the variant), size, where it ran and how long each phase took."""
    from studio import offline

    offline.apply()
    started = time.perf_counter()
    result: dict[str, Any] = {"number": job["number"], "host": socket.gethostname(), "pid": os.getpid(),
                              "recipe": job["recipe"]}
    sweep_stale_workdirs()
    workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-")
    try:
        result |= _run(job, model_blob, data_blob, workdir)
        if job.get("search_key") and result.get("graph_sha256") and job["number"] >= 0:
            from studio.search.graph_memo import remember

            remember(job["search_key"], result["graph_sha256"], job["number"], result)
    except StudioError as exc:
        result |= {"state": "failed", "error": str(exc)}
    except Exception as exc:  # a bug in a plugin: the trial fails with its reason, the search goes on
        result |= {"state": "failed", "error": f"{type(exc).__name__}: {first_line(exc)}",
                   "traceback": traceback.format_exc(limit=8)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["seconds"] = {**result.get("seconds", {}), "total": round(time.perf_counter() - started, 2)}
    return result


def _run(job: dict[str, Any], model_blob: bytes | None, data_blob: bytes | None, workdir: str) -> dict[str, Any]:
    from studio.bench import BenchSettings, run_bench
    from studio.optimize import graph_files, judged_fidelity
    from studio.recipe import apply_recipe, parse_recipe
    from studio.registry import default_registry
    from studio.search.payload import Packed, unpack
    from studio.search.slot import building, measuring
    from studio.search.spec import parse_spec
    from studio.tasks import TaskContext

    spec = parse_spec(job["spec"], "the search's spec")
    recipe = parse_recipe(job["recipe"], f"trial {job['number']}")
    seconds: dict[str, float] = {}
    ctx = TaskContext(workdir=Path(workdir))
    data = None
    if job.get("data"):
        from studio.data import FrameSet

        data = unpack(Packed(**job["data"]), data_blob)
        # the runs the search chooses on are out of every step's calibration and training (``for_search``)
        ctx.frames = FrameSet.open(data).for_search()
    out: dict[str, Any] = {}
    with building():
        clock = time.perf_counter()
        base = _base_model(job, model_blob)
        variant = apply_recipe(base, recipe, default_registry(), ctx) if recipe.steps else base
        graphs = graph_files(variant)  # exported here, not while another trial is being timed
        seconds["build"] = round(time.perf_counter() - clock, 2)
        out["size_mb"] = round(sum(g.stat().st_size for g in graphs) / 1e6, 3)
        out["params"] = variant.params
        out["steps"] = ctx.reports
        twin = _twin(job, graphs, out) if recipe.steps else None
        if twin is not None:  # the same graphs as an earlier trial here: its judgement and timing hold
            return out | twin | {"seconds": seconds}
        if recipe.steps:
            # The search chooses (prunes, ranks, draws its front) on frames held out of the calibration side;
            # the judging frames only report, so a trial's reported figure is not the one it was picked on.
            clock = time.perf_counter()
            quick = judged_fidelity(base, variant, 1, spec.quick_frames, ctx, spec.runtime, side="choosing")
            out["quick_fidelity"] = _fidelity(quick)
            if quick["value"] < spec.target - spec.quick_margin:
                seconds["judge"] = round(time.perf_counter() - clock, 2)
                return out | {"state": "pruned", "seconds": seconds,
                              "reason": f"{quick['metric']} {quick['value']:.3f} on {spec.quick_frames} choosing "
                                        f"frames, below {spec.target} − {spec.quick_margin}"}
            chosen = judged_fidelity(base, variant, 1, spec.fidelity_frames, ctx, spec.runtime, side="choosing")
            out["choosing_fidelity"] = _fidelity(chosen)
            # without the model's own frames the judging frames chose (their note says so): not judged twice
            full = (chosen if ctx.frames is None
                    else judged_fidelity(base, variant, 1, spec.fidelity_frames, ctx, spec.runtime))
            out["fidelity"] = _fidelity(full)
            seconds["judge"] = round(time.perf_counter() - clock, 2)
    waited: dict[str, float] = {}
    with measuring(waited):
        clock = time.perf_counter()
        bench = run_bench(variant, BenchSettings(runtime=spec.runtime, threads=spec.threads, runs=spec.runs,
                                                 frames=data))
        seconds["measure"] = round(time.perf_counter() - clock, 2)
    seconds["waited_for_slot"] = round(waited.get("seconds", 0.0), 2)
    out["latency_ms"] = bench["latency_ms"]["total"]
    out["bench"] = {"runtime": bench["runtime"], "threads": bench["threads"], "runs": bench["runs"],
                    "warmup": bench["warmup"], "input_shape": bench["input_shape"], "method": bench["method"]}
    return out | {"state": "complete", "seconds": seconds}


def _fidelity(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a fidelity result a search keeps: metric, value, interval, evidence."""
    keep = ("metric", "value", "low", "high", "interval", "evidence", "frame_set", "frames")
    return {key: result[key] for key in keep if key in result}
