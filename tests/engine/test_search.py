"""`deploy-studio search` end to end: real trials of a real model in real Ray workers, killed and resumed, through
a Ray head started as its own process, and with a worker killed mid-trial.

The model is zoo:yolo11n-pose (2.9 M parameters, real weights) over input sizes and FP16, with small frame
counts: each trial takes seconds. Every search runs as the CLI in a child process, as a user runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

SPEC = """
[target]
fidelity = 0.5
[objective]
minimize = ["latency"]
runs = 5
[budget]
trials = {trials}
[judge]
frames = 3
quick_frames = 2
[[stages]]
plugins = ["input.size"]
[stages.search."input.size"]
size = [256, 640, 32]
[[stages]]
plugins = ["quantize.fp16"]
"""


def write_spec(folder: Path, trials: int) -> Path:
    path = folder / "spec.toml"
    path.write_text(SPEC.format(trials=trials))
    return path


def search_command(spec: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "studio.cli", "search", "zoo:yolo11n-pose", "--spec", str(spec), "-o", str(out),
            "--json", *extra]


def finished_trials(out: Path) -> int:
    return len(list((out / "trials").glob("*/result.json"))) if (out / "trials").exists() else 0


def wait_for(condition, what: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_search(spec: Path, out: Path, *extra: str, env: dict | None = None) -> dict:
    done = subprocess.run(search_command(spec, out, *extra), capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Token authentication is enabled" not in done.stderr  # Ray's default notice on a local start
    return json.loads(done.stdout)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the search and everything it started (Ray's local cluster included), as a crash would."""
    children = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait(30)


def test_a_killed_search_resumes_and_ends_with_every_trial_of_its_budget(tmp_path):
    spec, out = write_spec(tmp_path, trials=4), tmp_path / "search"
    first = subprocess.Popen(search_command(spec, out, "--workers", "1"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: finished_trials(out) >= 2 or first.poll() is not None, "two finished trials")
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
    finally:
        kill_tree(first)
    killed_at = finished_trials(out)
    assert 2 <= killed_at < 4

    # The folder is held by nobody now (the lock died with the process); the same command resumes.
    summary = run_search(spec, out, "--workers", "1")
    assert summary["resumed"] is True
    rows = summary["trials"]
    assert len(rows) == 4 and finished_trials(out) == 4
    assert len({json.dumps(r["params"], sort_keys=True) for r in rows}) == 4  # four distinct variants
    assert all(r["state"] == "complete" and r["latency_p50_ms"] > 0 for r in rows), rows
    assert all(r["fidelity"] is not None and 0 <= r["fidelity"] <= 1 for r in rows)
    # The bundled media have no frames to spare: the choice is made on the judging frames too, and says so.
    trial = json.loads(next((out / "trials").glob("*/result.json")).read_text())
    assert "no frames to spare" in trial["choosing_fidelity"]["frame_set"], trial["choosing_fidelity"]
    assert all(r["feasible"] == (r["choosing_fidelity"] >= 0.5) for r in rows)
    assert summary["baseline"]["latency_p50_ms"] > 0
    # The trials finished before the kill are kept as they were, not run again.
    before = {r["number"] for r in rows if (out / "trials" / f"{r['number']:04d}").exists()}
    assert len(before) == 4
    import optuna

    study = optuna.load_study(study_name="deploy-studio-search", storage=f"sqlite:///{out / 'study.db'}")
    skipped = [t.user_attrs.get("skipped") for t in study.trials if "skipped" in t.user_attrs]
    assert all(s == "interrupted" or s.startswith("duplicate") for s in skipped)
    assert sum(s == "interrupted" for s in skipped) <= 1  # the one trial that was running when it was killed
    for row in rows:  # each trial's recipe is saved beside its result and replays as a recipe
        from studio.recipe import load_recipe

        recipe = load_recipe(out / "trials" / f"{row['number']:04d}" / "recipe.toml")
        assert [s.plugin for s in recipe.steps] == [s["plugin"] for s in row["recipe"]["steps"]]


def test_a_second_search_into_a_running_searchs_folder_is_refused(tmp_path):
    spec, out = write_spec(tmp_path, trials=3), tmp_path / "search"
    first = subprocess.Popen(search_command(spec, out, "--workers", "1"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: (out / ".search.lock").exists() and (out / "search.toml").exists(), "the first search")
        second = subprocess.run(search_command(spec, out), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        assert "another search" in second.stderr and str(out) in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        kill_tree(first)


def test_a_worker_killed_mid_trial_fails_that_trial_and_the_search_goes_on(tmp_path):
    spec, out = write_spec(tmp_path, trials=3), tmp_path / "search"
    search = subprocess.Popen(search_command(spec, out, "--workers", "1"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True, text=True)
    killed = []

    def kill_a_running_trial() -> bool:
        for process in psutil.Process(search.pid).children(recursive=True):
            try:
                # a trial under way: its worker has made its folder (which the kill leaves behind)
                if ("ray::run_trial" in " ".join(process.cmdline())
                        and list(Path(tempfile.gettempdir()).glob(f"deploy-studio-trial-{process.pid}-*"))):
                    process.kill()
                    killed.append(process.pid)
                    return True
            except psutil.NoSuchProcess:
                continue
        return search.poll() is not None

    try:
        wait_for(kill_a_running_trial, "a worker running a trial")
        stdout, stderr = search.communicate(timeout=600)
    finally:
        if search.poll() is None:
            kill_tree(search)
    assert killed and search.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    states = [r["state"] for r in summary["trials"]]
    failed = [r for r in summary["trials"] if r["state"] == "failed"]
    assert len(failed) <= 1 and len(summary["trials"]) == 3, states
    # The kill hit the baseline's timing or a trial: a trial is failed with the reason, or the model itself is.
    reasons = [r["error"] for r in failed] + summary["notes"]
    assert all(r["recipe"]["steps"] and r["summary"] != "the model itself" for r in failed)  # named by its recipe
    assert any("died" in reason for reason in reasons), (states, summary["notes"])
    # The killed worker never removed its trial folder; the search swept it.
    assert not list(Path(tempfile.gettempdir()).glob(f"deploy-studio-trial-{killed[0]}-*"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_head():
    """A Ray head started as its own process on loopback (as `ray start --head` on a cluster's machine)."""
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    gcs, client = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a test cluster: no token to hand around
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                    f"--ray-client-server-port={client}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={temp}"], check=True, capture_output=True, env=env,
                   timeout=180)

    def listening() -> bool:  # `ray start` returns before its Ray Client server listens
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", client)) == 0

    try:
        wait_for(listening, "the Ray Client server", timeout_s=120)
        yield f"ray://127.0.0.1:{client}", env, Path(temp)
    finally:
        # The head's processes name its folder on their command lines; their children (agents, workers) retitle
        # themselves, so they are found through their parents before anything is killed.
        head = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
        family = {p.pid: p for process in head for p in [process, *_descendants(process)]}
        for process in family.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        shutil.rmtree(temp, ignore_errors=True)


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_trials_run_on_a_ray_head_started_as_a_separate_process(tmp_path, ray_head):
    address, env, head_folder = ray_head
    spec, out = write_spec(tmp_path, trials=2), tmp_path / "search"
    summary = run_search(spec, out, "--cluster", address, env=env)
    assert summary["method"]["where"] == address
    assert len(summary["trials"]) == 2 and all(r["state"] == "complete" for r in summary["trials"])
    # The trials ran in the head's worker processes: each worker's log, named by its pid, is in the head's folder.
    pids = {json.loads(p.read_text())["pid"] for p in (out / "trials").glob("*/result.json")}
    logs = " ".join(path.name for path in head_folder.rglob("worker-*"))
    assert pids and all(f"-{pid}." in logs for pid in pids), (pids, logs[:500])


def test_an_unreachable_cluster_is_refused_in_one_line(tmp_path):
    spec = write_spec(tmp_path, trials=2)
    port = free_port()
    done = subprocess.run(search_command(spec, tmp_path / "search", "--cluster", f"ray://127.0.0.1:{port}"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"ray://127.0.0.1:{port}" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_stopped_search_cancels_its_running_trial_and_resumes(tmp_path):
    """A stop: the running trial is marked cancelled (not counted, run again on resume), no trial is left running
    in the study, and the same command then finishes the budget. SIGTERM, whose handler Ray replaces when it
    starts (the driver puts the caller's back); Ctrl-C's SIGINT, the window's Stop, reaches the same handler and
    is tested through the window (tests/ui/test_search_view.py)."""
    stop = signal.SIGTERM
    import optuna
    from optuna.trial import TrialState

    spec, out = write_spec(tmp_path, trials=3), tmp_path / "search"
    search = subprocess.Popen(search_command(spec, out, "--workers", "1"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: finished_trials(out) >= 1 or search.poll() is not None, "a finished trial")
        search.send_signal(stop)
        _, stderr = search.communicate(timeout=120)
    finally:
        if search.poll() is None:
            kill_tree(search)
    assert search.returncode == 130 and "interrupted" in stderr.strip().splitlines()[-1]
    study = optuna.load_study(study_name="deploy-studio-search", storage=f"sqlite:///{out / 'study.db'}")
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    stopped = finished_trials(out)
    summary = run_search(spec, out, "--workers", "1")
    assert len(summary["trials"]) == 3 and finished_trials(out) == 3 and stopped < 3
    assert all(r["state"] == "complete" for r in summary["trials"])


def test_a_trial_that_builds_an_earlier_trials_graphs_is_not_judged_or_timed_again():
    """The worker's own function, in this process: the second trial builds the same bytes and takes the first
    one's figures, naming it, instead of judging and timing them again."""
    import tomllib
    import uuid

    from studio.recipe import Recipe, Step
    from studio.search.graph_memo import forget
    from studio.search.payload import pack
    from studio.search.spec import parse_spec
    from studio.search.trial import run_trial

    spec = parse_spec(tomllib.loads(SPEC.format(trials=2)))
    packed, blob = pack("zoo:yolo11n-pose")
    key = f"test-{uuid.uuid4().hex}"
    recipe = Recipe((Step("input.size", {"size": 320}, 1),)).as_dict()

    def trial(number: int) -> dict:
        return run_trial({"number": number, "recipe": recipe, "spec": spec.as_dict(), "model": vars(packed),
                          "data": None, "trust": False, "search_key": key}, blob, None)

    try:
        first, second = trial(0), trial(1)
    finally:
        forget(key)
    assert first["state"] == second["state"] == "complete", (first.get("error"), second.get("error"))
    assert "same_graph_as" not in first and second["same_graph_as"] == 0
    assert second["graph_sha256"] == first["graph_sha256"] and second["size_mb"] == first["size_mb"]
    assert second["latency_ms"] == first["latency_ms"] and second["fidelity"] == first["fidelity"]
    assert "judge" in first["seconds"] and "measure" in first["seconds"]  # the first judged and timed …
    assert "judge" not in second["seconds"] and "measure" not in second["seconds"]  # … the second did neither
