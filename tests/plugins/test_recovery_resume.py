"""A studio killed mid-training resumes: ``deploy-studio optimize`` with a recovery recipe is killed
(SIGKILL, as a crash or a closed laptop would) after its first checkpoint; the same command run again
continues from that checkpoint instead of starting over, and finishes normally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from studio.child_python import module_command
from studio.progress import METRIC_PREFIX, PROGRESS_ENV
from studio.recipe import Recipe, Step, save_recipe


@pytest.mark.slow
def test_a_killed_recovery_resumes_from_its_last_checkpoint(tmp_path):
    recipe = tmp_path / "prune.toml"
    save_recipe(Recipe((Step("prune.channels", {"ratio": 0.3, "recovery_steps": 50, "recovery_batch": 2,
                                                     "recovery_imgsz": 128}, 4),)),
                recipe)
    cache = tmp_path / "cache"
    env = {**os.environ, PROGRESS_ENV: "lines", "DEPLOY_STUDIO_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    command = module_command("studio.cli", "optimize", "zoo:yolov3-tiny-coco", "--recipe", str(recipe),
                             "--runs", "2", "--fidelity-frames", "4", "--json")
    first = subprocess.Popen([*command, "-o", str(tmp_path / "first")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                             start_new_session=True)
    try:
        for line in first.stderr:  # the first held-out evaluation after training began (step 25)
            if line.startswith(METRIC_PREFIX) and json.loads(line[len(METRIC_PREFIX):]).get("step") == 25 \
                    and "fidelity" in line:
                break
        deadline = time.monotonic() + 60
        while not list((cache / "recovery").glob("*.pt")) and time.monotonic() < deadline:
            time.sleep(0.1)  # the checkpoint is written right after the evaluation is published
        assert list((cache / "recovery").glob("*.pt")), "no checkpoint was written"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "first").exists()  # nothing was published by the killed run

    done = subprocess.run([*command, "-o", str(tmp_path / "second")], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    recovery = json.loads(done.stdout)["steps"][0]["details"][0]["recovery"]
    assert recovery["resumed_from_step"] == 25 and recovery["steps"] == 50
    assert [point["step"] for point in recovery["fidelity_curve"]] == [0, 25, 50]
    assert not list((cache / "recovery").glob("*.pt"))  # finished: the checkpoint is gone
