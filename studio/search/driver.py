"""The search's driver: an Optuna study stored in SQLite beside the results, trials run by Ray workers.

OUT_DIR holds ``search.toml`` (the spec), ``model.json`` (which model and data), ``study.db`` (the Optuna study),
``baseline.json`` (the model itself timed like a trial), ``trials/NNNN/{recipe.toml,result.json}`` and
``search.json`` (every trial's row and the front). A search killed at any point is resumed by running it again
with the same model, spec and data: trials it left running are marked interrupted and run again, finished ones
are kept. One search writes to a folder at a time (a lock held while it runs).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from studio.atomic import write_text_atomic
from studio.errors import BadInputError, StudioError
from studio.recipe import Recipe, parse_recipe, save_recipe
from studio.search.front import best, mark_front
from studio.search.graph_memo import forget, search_key
from studio.search.space import NONE, StagePlan, build_space, random_params, sample
from studio.search.spec import SearchSpec, load_spec, save_spec
from studio.tasks import Cancelled, TaskContext

STUDY_NAME = "deploy-studio-search"
RESULT_ATTR = "result"  # the trial's row, as the window and the CLI show it
CONSTRAINT = "fidelity"  # the trial's constraint: target − fidelity, ≤ 0 when it reaches the target
SKIPPED_ATTR = "skipped"  # "interrupted", "cancelled" or "duplicate of N": not a trial of the budget
MAX_DUPLICATES = 30  # random draws per untried point looked for (× 10): beyond that the space is exhausted
TrialCallback = Callable[[dict[str, Any]], None]


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


class FolderLock:
    """The folder's ``.search.lock``, held for the whole search: a second search into it is refused at once."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".search.lock"
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StudioError(f"another search (pid {holder}) is writing to this folder", path=self.path.parent,
                              fix="wait for it, stop it, or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _sampler(spec: SearchSpec) -> Any:
    import optuna

    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=spec.seed, population_size=max(4, min(50, (spec.trials or 20) // 2)))
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=max(2, min(10, (spec.trials or 20) // 3)))


def _check_folder(out_dir: Path, spec: SearchSpec, identity: dict[str, Any]) -> bool:
    """True when ``out_dir`` holds this same search (resume); a different one there is refused."""
    spec_file, model_file = out_dir / "search.toml", out_dir / "model.json"
    if not spec_file.exists():
        stray = [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
        if stray:
            raise StudioError("the output folder holds other files", path=out_dir,
                              fix="choose an empty or new folder (or the folder of the search to resume)")
        return False
    if load_spec(spec_file).as_dict() != spec.as_dict():
        raise StudioError("this folder holds a search with another spec", path=out_dir,
                          fix="resume it with its own spec (search.toml in it), or choose a new folder")
    if model_file.exists() and json.loads(model_file.read_text()) != identity:
        raise StudioError("this folder holds a search of another model or data", path=out_dir,
                          fix="choose a new folder")
    return (out_dir / "study.db").exists()  # a spec written by the window before its first run is no resume


def _identity(model: Any, model_spec: str, data: Path | None) -> dict[str, Any]:
    from studio.data import fingerprint

    return {"model": model_spec, "sha256": model.provenance.sha256,
            "data": str(data) if data else None, "data_fingerprint": fingerprint(data) if data else None}


class Search:
    """One search into ``out_dir``: ``run()`` starts or resumes it and returns the summary."""

    def __init__(self, model_spec: str, spec: SearchSpec, out_dir: Path, *, cluster: str | None = None,
                 workers: int = 2, data: Path | None = None, trust: bool = False, ctx: TaskContext | None = None,
                 on_trial: TrialCallback | None = None, spec_source: str = "search spec"):
        self.model_spec, self.spec, self.out_dir = model_spec, spec, Path(out_dir).expanduser().resolve()
        self.cluster_address, self.workers, self.trust = cluster, workers, trust
        self.data = Path(data).expanduser().resolve() if data else None
        self.memo_key = ""  # names this search's memo of measured graphs (``graph_memo``), set when it runs
        self.ctx = ctx or TaskContext()
        self.on_trial = on_trial
        self.spec_source = spec_source
        self.rows: dict[int, dict[str, Any]] = {}
        self.baseline: dict[str, Any] | None = None
        self.notes: list[str] = []

    # --- set-up ---------------------------------------------------------------------------------------------
    def _prepare(self) -> tuple[Any, list[StagePlan], dict[str, Any]]:
        from studio.loaders import load_model
        from studio.registry import default_registry

        if self.cluster_address:  # an address that does not answer is refused before anything is written
            from studio.search.cluster import probe

            probe(self.cluster_address)
        model = load_model(self.model_spec, trust=self.trust)
        if model.image_input is None:
            raise StudioError(f"{model.name}: search covers image models", fix="compress language models from the "
                              "optimize panel or `deploy-studio optimize`")
        plans = build_space(self.spec, default_registry(), model, self.spec_source)
        return model, plans, _identity(model, self.model_spec, self.data)

    def _study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{self.out_dir / 'study.db'}"
        return optuna.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                                   directions=["minimize"] * len(self.spec.objectives), sampler=_sampler(self.spec))

    def _close_stale(self, study: Any) -> None:
        """Trials a killed search left running are marked interrupted: not counted, run again."""
        from optuna.trial import Trial, TrialState

        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            Trial(study, frozen._trial_id).set_user_attr(SKIPPED_ATTR, "interrupted")
            study.tell(frozen.number, state=TrialState.FAIL)
            # A kill between writing a trial's files and telling the study leaves a result the study never
            # counted (seen in CI: five result folders for four trials); it is run again, so its files go.
            shutil.rmtree(self.out_dir / "trials" / f"{frozen.number:04d}", ignore_errors=True)
            self.notes.append(f"trial {frozen.number} was left running by a stopped search: run again")

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        model, plans, identity = self._prepare()  # bad input is refused before the folder is made
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.out_dir):
            resumed = _check_folder(self.out_dir, self.spec, identity)
            self.memo_key = search_key(self.out_dir, self.spec.as_dict(), identity)
            (self.out_dir / "trials").mkdir(exist_ok=True)
            save_spec(self.spec, self.out_dir / "search.toml")
            write_json(self.out_dir / "model.json", identity)
            study = self._study()
            self._close_stale(study)
            self._load_rows(study)
            if (self.out_dir / "baseline.json").exists():
                self.baseline = json.loads((self.out_dir / "baseline.json").read_text())
            from studio.search import cluster as ray_cluster

            started = time.monotonic()
            with _keeping_signal_handlers():  # Ray replaces SIGTERM's; the caller's (stop the search) stay
                cluster = ray_cluster.connect(self.cluster_address, self.workers)
            try:
                self._loop(study, plans, model, cluster, started)
            finally:
                ray_cluster.shutdown()
                from studio.search.trial import sweep_stale_workdirs

                sweep_stale_workdirs()  # this host's folders of workers killed mid-trial
                forget(self.memo_key)  # this host's figures of graphs already measured, for twins
            summary = self.summary(resumed)
            write_json(self.out_dir / "search.json", summary)
            return summary

    def _counted(self) -> int:
        return len(self.rows)

    def _loop(self, study: Any, plans: list[StagePlan], model: Any, cluster: Any, started: float) -> None:
        import ray

        from studio.search.payload import pack

        packed_model, model_blob = pack(self.model_spec, tuple(model.source_paths[1:]))
        packed_data, data_blob = pack(str(self.data)) if self.data else (None, None)
        model_ref = ray.put(model_blob) if model_blob is not None else None
        data_ref = ray.put(data_blob) if data_blob is not None else None
        elapsed_before = float(self._meta().get("elapsed_s", 0.0))

        def job(number: int, recipe: Recipe) -> dict[str, Any]:
            return {"number": number, "recipe": recipe.as_dict(), "spec": self.spec.as_dict(),
                    "model": vars(packed_model), "data": vars(packed_data) if packed_data else None,
                    "trust": self.trust, "search_key": self.memo_key}

        inflight: dict[Any, tuple[Any, Recipe]] = {}
        if self.baseline is None:  # the model itself, timed like every trial, for the speed-ups
            inflight[cluster.remote_trial.remote(job(-1, Recipe()), model_ref, data_ref)] = (None, Recipe())
        duplicates = 0
        rng = random.Random(self.spec.seed + len(self.rows))
        try:
            while True:
                self.ctx.check_cancelled()
                out_of_time = (self.spec.minutes is not None
                               and elapsed_before + time.monotonic() - started >= self.spec.minutes * 60)
                while (len([t for t, _ in inflight.values() if t is not None]) + self._counted() < self._trial_budget()
                       and len(inflight) < cluster.workers and not out_of_time and duplicates < MAX_DUPLICATES):
                    trial = study.ask()
                    recipe = sample(trial, plans)
                    twin = "the model itself" if not recipe.steps else self._twin(trial.params, inflight)
                    if twin is not None:
                        from optuna.trial import TrialState

                        trial.set_user_attr(SKIPPED_ATTR, f"duplicate of {twin}")  # not a trial of the budget
                        study.tell(trial, state=TrialState.FAIL)
                        # A model-based sampler may keep proposing what it has run (few trials, a small space):
                        # the next trial is a random point nobody has tried, when one is found.
                        fresh = self._untried(plans, inflight, rng)
                        if fresh is None:
                            duplicates = MAX_DUPLICATES
                        else:
                            study.enqueue_trial(fresh)
                        continue
                    duplicates = 0
                    ref = cluster.remote_trial.remote(job(trial.number, recipe), model_ref, data_ref)
                    inflight[ref] = (trial, recipe)
                if duplicates >= MAX_DUPLICATES and "exhausted" not in " ".join(self.notes):
                    self.notes.append(f"stopped early: no untried point in {MAX_DUPLICATES * 10} random draws "
                                      "(the space is exhausted)")
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    trial, recipe = inflight.pop(ref)
                    self._finish(study, trial, recipe, self._result(ray, ref))
                    self._save_meta(elapsed_before + time.monotonic() - started)
        except BaseException:  # cancel, Ctrl-C, a driver bug: stop every worker, leave the study consistent
            self._stop(study, ray, inflight)
            raise

    def _stop(self, study: Any, ray: Any, inflight: dict[Any, tuple[Any, Recipe]]) -> None:
        """Cancel every running trial: its worker is killed, and it is marked cancelled in the study (not counted,
        run again on resume). Every trial the study holds as running is this search's (the folder's lock)."""
        from optuna.trial import Trial, TrialState

        for ref in inflight:
            ray.cancel(ref, force=True)
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            Trial(study, frozen._trial_id).set_user_attr(SKIPPED_ATTR, "cancelled")
            study.tell(frozen.number, state=TrialState.FAIL)

    @staticmethod
    def _result(ray: Any, ref: Any) -> dict[str, Any]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker process died (killed, out of memory): this trial fails
            return {"state": "failed", "error": f"the worker running it died ({type(exc).__name__})"}

    def _untried(self, plans: list[StagePlan], inflight: dict[Any, tuple[Any, Recipe]],
                 rng: random.Random) -> dict[str, Any] | None:
        for _ in range(MAX_DUPLICATES * 10):
            params = random_params(plans, rng)
            applies = any(plan.param is None or params[plan.param] != NONE for plan in plans)
            if applies and self._twin(params, inflight) is None:
                return params
        return None

    def _twin(self, params: dict[str, Any], inflight: dict[Any, tuple[Any, Recipe]]) -> int | None:
        """The number of a finished or running trial with the same parameters (sampling it again adds nothing)."""
        for number, row in self.rows.items():
            if row["params"] == params:
                return number
        for trial, _ in inflight.values():
            if trial is not None and trial.params == params:
                return trial.number
        return None

    def _trial_budget(self) -> int:
        return self.spec.trials if self.spec.trials is not None else 1_000_000

    # --- results --------------------------------------------------------------------------------------------
    def _finish(self, study: Any, trial: Any, recipe: Recipe, result: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        if trial is None:
            self.baseline = result
            write_json(self.out_dir / "baseline.json", result)
            if result.get("state") != "complete":
                self.notes.append(f"the model itself could not be timed: {result.get('error')}")
            for row in self.rows.values():
                self._add_speedup(row)
            if self.on_trial is not None:  # the window draws the model itself on the plot too
                self.on_trial(self._row(-1, {}, {"recipe": Recipe().as_dict(), **result}) | {"baseline": True})
            return
        folder = self.out_dir / "trials" / f"{trial.number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, folder / "recipe.toml")
        write_json(folder / "result.json", result)
        row = self._row(trial.number, trial.params, {"recipe": recipe.as_dict(), **result})
        trial.set_user_attr(RESULT_ATTR, row)
        fidelity = row["choosing_fidelity"]  # what the search chooses on, never the judging frames' figure
        # Optuna's samplers (TPE and NSGA-II) prefer trials whose constraints are ≤ 0
        trial.set_constraint(CONSTRAINT, self.spec.target - fidelity if fidelity is not None else 1.0)
        if row["state"] == "complete":
            study.tell(trial, [row["latency_p50_ms"] if o == "latency" else row["size_mb"]
                               for o in self.spec.objectives])
        else:
            study.tell(trial, state=TrialState.PRUNED if row["state"] == "pruned" else TrialState.FAIL)
        self.rows[trial.number] = row
        if self.on_trial is not None:
            self.on_trial(row)

    def _row(self, number: int, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        fidelity = result.get("fidelity") or result.get("quick_fidelity") or {}
        # a trial of a search from before choosing frames existed chose on its judging figure
        choosing = result.get("choosing_fidelity") or result.get("quick_fidelity") or fidelity
        recipe = parse_recipe(result["recipe"])  # the trial's own: a worker that died returned none
        row = {
            "number": number, "state": result.get("state", "failed"), "params": params,
            "recipe": recipe.as_dict(), "summary": _recipe_text(recipe),
            "metric": fidelity.get("metric"), "fidelity": fidelity.get("value"),
            "fidelity_interval": fidelity.get("interval"), "choosing_fidelity": choosing.get("value"),
            "fidelity_frames": self.spec.quick_frames if "fidelity" not in result else self.spec.fidelity_frames,
            "latency_p50_ms": (result.get("latency_ms") or {}).get("p50"),
            "size_mb": result.get("size_mb"), "host": result.get("host"), "seconds": result.get("seconds", {}),
            "error": result.get("error") or result.get("reason"),
            # its graphs were byte for byte an earlier trial's: that trial's figures, not measured again
            "same_graph_as": result.get("same_graph_as"),
        }
        # at the target by the choosing frames' figure: the front is a choice, and the judging side reports it
        row["feasible"] = row["state"] == "complete" and (row["choosing_fidelity"] or 0.0) >= self.spec.target
        return self._add_speedup(row)

    def _add_speedup(self, row: dict[str, Any]) -> dict[str, Any]:
        base = self.baseline or {}
        base_ms = (base.get("latency_ms") or {}).get("p50")
        same_host = base.get("host") == row.get("host")
        row["speedup"] = (round(base_ms / row["latency_p50_ms"], 3)
                          if base_ms and row.get("latency_p50_ms") and same_host else None)
        return row

    def _load_rows(self, study: Any) -> None:
        from optuna.trial import TrialState

        for frozen in study.get_trials(deepcopy=False):
            if SKIPPED_ATTR in frozen.user_attrs or frozen.state not in (
                    TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
                continue
            if RESULT_ATTR in frozen.user_attrs:
                self.rows[frozen.number] = dict(frozen.user_attrs[RESULT_ATTR])

    def _meta(self) -> dict[str, Any]:
        path = self.out_dir / "progress.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_meta(self, elapsed: float) -> None:
        write_json(self.out_dir / "progress.json", {"elapsed_s": round(elapsed, 1), "trials": len(self.rows)})

    def summary(self, resumed: bool = False) -> dict[str, Any]:
        rows = [self._add_speedup(r) for r in sorted(self.rows.values(), key=lambda r: r["number"])]
        base = self.baseline or {}
        itself = None
        if base.get("state") == "complete":  # the model itself is at the target by definition: a variant that is
            # slower and bigger than it is on no front
            itself = {"number": -1, "state": "complete", "feasible": True, "size_mb": base.get("size_mb"),
                      "latency_p50_ms": (base.get("latency_ms") or {}).get("p50")}
        mark_front(rows + ([itself] if itself else []), self.spec.objectives)
        top = best(rows, self.spec.objectives)
        return {
            "model": self.model_spec, "out": str(self.out_dir), "resumed": resumed,
            "target": self.spec.target, "objectives": list(self.spec.objectives),
            "trials": rows, "front": [r["number"] for r in rows if r["on_front"]],
            "best": top, "baseline": {"latency_p50_ms": (base.get("latency_ms") or {}).get("p50"),
                                      "size_mb": base.get("size_mb"), "host": base.get("host"),
                                      "on_front": bool(itself and itself["on_front"])},
            "counts": {state: sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "failed")},
            "notes": self.notes,
            "method": {
                "fidelity": f"against the model on {self.spec.fidelity_frames} judging frames, reported; the "
                            "search chooses (the target, the front) on as many frames of two runs of the "
                            "calibration side, which no step of a trial calibrated or trained on "
                            "(choosing_fidelity; the judging frames themselves when the search "
                            f"has no frames of the model's own), and prunes below {self.spec.target} − "
                            f"{self.spec.quick_margin} on {self.spec.quick_frames} of those",
                "latency": f"`deploy-studio bench` of each variant: {self.spec.runs} frames after 5 warm-up, "
                           f"{self.spec.threads} thread(s), {self.spec.runtime}, pipeline p50; timed in the "
                           "machine's exclusive measurement slot (no other trial building or judging on it)",
                "size": "bytes of the variant's ONNX graph(s)",
                "same graphs": "a trial whose graphs are byte for byte an earlier trial's on the same host takes "
                               "that trial's fidelity and latency (same_graph_as) and is not put on the front",
                "where": self.cluster_address or "Ray on this machine",
            },
        }


@contextmanager
def _keeping_signal_handlers() -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread has handlers to keep
        yield
        return
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            if handler is not None:
                signal.signal(number, handler)


def _recipe_text(recipe: Recipe) -> str:
    parts = []
    for step in recipe.steps:
        settings = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in step.settings.items())
        parts.append(f"{step.plugin}({settings})" if settings else step.plugin)
    return " → ".join(parts) or "the model itself"


def run_search(model_spec: str, spec_path: Path, out_dir: Path, **options: Any) -> dict[str, Any]:
    """``deploy-studio search``: read the spec, run or resume the search, return its summary."""
    spec = load_spec(Path(spec_path))
    return Search(model_spec, spec, out_dir, spec_source=str(spec_path), **options).run()


def read_rows(out_dir: Path) -> dict[str, Any]:
    """The summary of a search folder (finished or not) from its study, without running anything."""
    out_dir = Path(out_dir)
    if not (out_dir / "search.toml").exists():
        raise BadInputError("not a search folder (no search.toml)", path=out_dir, fix="choose a search's folder")
    spec = load_spec(out_dir / "search.toml")
    identity = json.loads((out_dir / "model.json").read_text()) if (out_dir / "model.json").exists() else {}
    search = Search(identity.get("model", "?"), spec, out_dir)
    if (out_dir / "study.db").exists():
        search._load_rows(search._study())
    if (out_dir / "baseline.json").exists():
        search.baseline = json.loads((out_dir / "baseline.json").read_text())
    return search.summary()


__all__ = ["Cancelled", "Search", "read_rows", "run_search"]
