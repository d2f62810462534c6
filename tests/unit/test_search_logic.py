"""The search's pure logic: spec parsing, the space from the plugins' declarations, the front, the locks."""

from __future__ import annotations

import os
import threading
import tomllib

import pytest

from studio.errors import BadInputError, StudioError
from studio.model import ImageInput
from studio.plugin_api import settings_schema
from studio.registry import default_registry
from studio.search.cluster import probe
from studio.search.driver import FolderLock
from studio.search.front import best, mark_front
from studio.search.slot import building, measuring
from studio.search.space import NONE, baseline_params, build_space, sample
from studio.search.spec import parse_spec, save_spec
from tests.unit.handles import handle

SPEC = """
[target]
fidelity = 0.9
[objective]
minimize = ["latency", "size"]
[budget]
trials = 6
[[stages]]
plugins = ["input.size"]
[stages.search."input.size"]
size = [320, 640, 64]
[[stages]]
plugins = ["quantize.fp16", "quantize.static_int8"]
optional = false
"""


@pytest.fixture
def dynamic_model(tmp_path):
    """A handle whose graph is a real (one-node) ONNX file with dynamic height and width."""
    import onnx
    from onnx import TensorProto, helper

    spec = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [spec], [out])
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return handle(image_input=ImageInput((640, 640), dynamic=True), onnx_path=path)


def test_a_spec_round_trips_through_its_saved_toml(tmp_path):
    spec = parse_spec(tomllib.loads(SPEC))
    assert spec.objectives == ("latency", "size") and spec.trials == 6 and spec.minutes is None
    save_spec(spec, tmp_path / "search.toml")
    assert parse_spec(tomllib.loads((tmp_path / "search.toml").read_text())) == spec


@pytest.mark.parametrize(("change", "message"), [
    ('[objective]\nminimize = ["speed"]', "objective.minimize"),
    ("[target]\nfidelity = 1.5", "target.fidelity"),
    ("[budget]\ntrials = 0", "budget.trials"),
    ("[sampler]\nname = \"grid\"", "sampler.name"),
    ("[extra]\nx = 1", "unknown table"),
])
def test_bad_specs_are_one_line_errors_naming_the_field(change, message):
    with pytest.raises(BadInputError) as info:
        parse_spec(tomllib.loads(change + '\n[[stages]]\nplugins = ["quantize.fp16"]\n'), "s.toml")
    assert message in str(info.value) and "s.toml" in str(info.value) and "\n" not in str(info.value)


def test_a_spec_without_stages_or_with_a_plugin_twice_is_refused():
    with pytest.raises(BadInputError, match="at least one"):
        parse_spec({})
    with pytest.raises(BadInputError, match="twice"):
        parse_spec({"stages": [{"plugins": ["quantize.fp16"]}, {"plugins": ["quantize.fp16"]}]})


def test_plugins_declare_what_is_searchable():
    registry = default_registry()
    ratio = {e["name"]: e for e in settings_schema(registry.get("prune.channels").Settings)}["ratio"]
    assert ratio["search"] == {"low": 0.1, "high": 0.6, "step": None}
    method = {e["name"]: e for e in settings_schema(registry.get("quantize.static_int8").Settings)}["method"]
    assert method["search"] == {"choices": ["minmax", "entropy", "percentile"]}
    samples = {e["name"]: e for e in settings_schema(registry.get("quantize.static_int8").Settings)}["samples"]
    assert samples["search"] is None


def test_the_space_samples_recipes_inside_the_declared_ranges(dynamic_model):
    import optuna

    registry = default_registry()
    plans = build_space(parse_spec(tomllib.loads(SPEC)), registry, dynamic_model)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        recipe = sample(trial, plans)
        study.tell(trial, 1.0)
        steps = {step.plugin: step.settings for step in recipe.steps}
        # the saved recipe names each plugin's settings version, so a replay does not migrate them again
        assert all(step.settings_version == registry.get(step.plugin).settings_version for step in recipe.steps)
        assert steps.keys() & {"quantize.fp16", "quantize.static_int8"}  # the second stage is not optional
        if "input.size" in steps:
            assert steps["input.size"]["size"] in range(320, 641, 64)
        if "quantize.static_int8" in steps:
            assert steps["quantize.static_int8"]["method"] in ("minmax", "entropy", "percentile")
        seen.add(tuple(sorted(trial.params.items(), key=str)))
    assert len(seen) > 5
    assert baseline_params(plans) is None  # a stage that is not optional: "nothing applied" is not in the space


def test_an_optional_space_has_the_model_itself_as_its_baseline(dynamic_model):
    spec = parse_spec({"stages": [{"plugins": ["quantize.fp16"]}, {"plugins": ["input.size"]}]})
    plans = build_space(spec, default_registry(), dynamic_model)
    assert baseline_params(plans) == {"stage1": NONE, "stage2": NONE}


@pytest.mark.parametrize(("search", "message"), [
    ({"input.size": {"size": [16, 640]}}, "outside"),
    ({"input.size": {"colour": [1, 2]}}, "no setting colour"),
    ({"input.size": {"size": "big"}}, "search range"),
])
def test_ranges_outside_a_setting_or_unknown_settings_are_refused(search, message, dynamic_model):
    spec = parse_spec({"stages": [{"plugins": ["input.size"], "search": search}]})
    with pytest.raises(BadInputError, match=message):
        build_space(spec, default_registry(), dynamic_model)


def test_a_plugin_that_cannot_run_on_the_model_is_refused_before_any_trial():
    spec = parse_spec({"stages": [{"plugins": ["input.size"]}]})
    with pytest.raises(BadInputError, match="one input size"):
        build_space(spec, default_registry(), handle())  # a fixed 640×640 graph


def test_an_unknown_plugin_names_the_installed_ones(dynamic_model):
    spec = parse_spec({"stages": [{"plugins": ["quantize.int3"]}]})
    with pytest.raises(StudioError, match="installed plugins"):
        build_space(spec, default_registry(), dynamic_model)


def row(number, latency, size, fidelity, state="complete", target=0.9):
    return {"number": number, "state": state, "latency_p50_ms": latency, "size_mb": size, "fidelity": fidelity,
            "feasible": state == "complete" and fidelity >= target}


def test_the_front_holds_the_undominated_variants_at_the_target():
    rows = [row(0, 10, 5, 0.99), row(1, 8, 6, 0.95), row(2, 12, 6, 0.97), row(3, 5, 2, 0.5), row(4, 9, 4, 0.96),
            row(5, 1, 1, 0.99, state="failed")]
    marked = {r["number"]: r["on_front"] for r in mark_front(rows, ("latency", "size"))}
    assert marked == {0: False, 1: True, 2: False, 3: False, 4: True, 5: False}
    assert best(rows, ("latency",))["number"] == 1
    assert best(rows, ("size",))["number"] == 4
    assert best([row(0, 1, 1, 0.1)], ("latency",)) is None


def test_a_second_search_into_the_same_folder_is_refused(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(StudioError, match="another search") as info, FolderLock(tmp_path):
            pass
        assert str(tmp_path) in str(info.value)
    with FolderLock(tmp_path):  # released with the first
        pass


def test_an_unreachable_cluster_is_one_line_naming_the_address():
    import socket

    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(StudioError) as info:
            probe(f"ray://127.0.0.1:{port}")
    text = str(info.value)
    assert f"ray://127.0.0.1:{port}" in text and "ray start --head" in text and "\n" not in text
    with pytest.raises(StudioError, match="HOST:PORT"):
        probe("ray://nowhere")


def test_timing_waits_for_builds_and_builds_wait_for_timing(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_STUDIO_SLOT_DIR", str(tmp_path))
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def build(name: str) -> None:
        with building():
            order.append(f"{name} builds")
            holding.set()
            release.wait(10)
            order.append(f"{name} done")  # still holding: nothing may time before this

    def measure() -> None:
        with measuring():
            order.append("timing")

    builder = threading.Thread(target=build, args=("a",))
    builder.start()
    holding.wait(10)
    timer = threading.Thread(target=measure)
    timer.start()
    timer.join(0.3)
    assert timer.is_alive() and "timing" not in order  # a build holds the cores: timing waits
    late = threading.Thread(target=build, args=("b",))
    holding.clear()
    late.start()
    late.join(0.3)
    assert "b builds" not in order  # a waiting timing run goes first: later builds queue behind it
    release.set()
    for thread in (builder, timer, late):
        thread.join(10)
    assert order.index("a done") < order.index("timing") < order.index("b builds")


def test_a_trials_recipe_carries_each_plugins_settings_version(dynamic_model):
    """A saved trial replays with ``optimize --recipe``: a step written without its version would be read as
    version 1 and migrated again (the video cascade's settings are at version 2)."""
    from optuna.trial import FixedTrial

    registry = default_registry()
    spec = parse_spec({"stages": [{"plugins": ["early_exit.video_cascade"], "optional": False,
                                   "search": {"early_exit.video_cascade": {"low_imgsz": [160, 320, 32]}}}]})
    recipe = sample(FixedTrial({"early_exit.video_cascade.low_imgsz": 192}),
                    build_space(spec, registry, dynamic_model))
    assert recipe.steps[0].settings_version == registry.get("early_exit.video_cascade").settings_version == 2
    assert recipe.as_dict()["steps"][0]["settings_version"] == 2


def test_random_points_stay_in_the_space_and_name_params_as_the_sampler_does(dynamic_model):
    import random

    from optuna.trial import FixedTrial

    from studio.search.space import random_params

    plans = build_space(parse_spec(tomllib.loads(SPEC)), default_registry(), dynamic_model)
    rng = random.Random(0)
    points = [random_params(plans, rng) for _ in range(200)]
    sizes = {p["input.size.size"] for p in points if p.get("stage1") == "input.size"}
    assert sizes == set(range(320, 641, 64))  # every step value, nothing between
    for params in points[:20]:  # each point is a valid trial of the space, its recipe built from exactly these
        recipe = sample(FixedTrial(params), plans)
        assert {s.plugin for s in recipe.steps} <= {"input.size", "quantize.fp16", "quantize.static_int8"}


def test_a_resume_removes_the_files_of_a_trial_it_marks_interrupted(tmp_path):
    """A kill between writing a trial's files and telling the study left a result the study never counted
    (CI saw five result folders for four trials): the resume marks the trial interrupted and removes them."""
    from types import SimpleNamespace

    import optuna

    from studio.search.driver import SKIPPED_ATTR, Search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    left_running = study.ask()
    folder = tmp_path / "trials" / f"{left_running.number:04d}"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("{}")
    search = SimpleNamespace(out_dir=tmp_path, notes=[])  # the two attributes _close_stale uses
    Search._close_stale(search, study)
    trial = study.trials[left_running.number]
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs[SKIPPED_ATTR] == "interrupted"
    assert not folder.exists() and search.notes


def test_trial_folders_of_dead_workers_are_swept_and_live_ones_kept(tmp_path):
    import psutil

    from studio.search.trial import WORKDIR_PREFIX, sweep_stale_workdirs

    gone = next(pid for pid in range(4_194_303, 1, -1) if not psutil.pid_exists(pid))  # no such process
    dead = tmp_path / f"{WORKDIR_PREFIX}{gone}-abc"
    live = tmp_path / f"{WORKDIR_PREFIX}{os.getpid()}-def"
    other = tmp_path / "deploy-studio-trial-notapid"
    for folder in (dead, live, other):
        (folder / "graph").mkdir(parents=True)
    assert sweep_stale_workdirs(str(tmp_path)) == [dead.name]
    assert not dead.exists() and live.exists() and other.exists()


def test_a_trial_with_an_earlier_trials_graphs_takes_its_figures_and_stays_off_the_front(tmp_path):
    from studio.search.graph_memo import forget, graph_digest, lend, recall, remember
    from ui.search_logic import table_entries

    one, same, other = tmp_path / "a-int8mixed.onnx", tmp_path / "b-int8mixed.onnx", tmp_path / "c.onnx"
    one.write_bytes(b"graph bytes")
    same.write_bytes(b"graph bytes")  # another name (another recipe), the same bytes
    other.write_bytes(b"graph byteS")
    assert graph_digest([one]) == graph_digest([same]) != graph_digest([other])
    assert graph_digest([one, other]) != graph_digest([other, one])  # segments in order
    root = tmp_path / "tmp"
    measured = {"state": "complete", "fidelity": {"value": 0.97}, "latency_ms": {"p50": 12.0}, "size_mb": 3.0,
                "seconds": {"build": 5.0, "judge": 9.0}}
    assert recall("search", graph_digest([one]), root) is None
    remember("search", graph_digest([one]), 4, measured, root)
    remember("search", graph_digest([other]), 5, {"state": "failed", "error": "boom"}, root)  # lends nothing
    twin = recall("search", graph_digest([same]), root)
    assert lend(twin) == {"state": "complete", "fidelity": {"value": 0.97}, "latency_ms": {"p50": 12.0},
                          "same_graph_as": 4}  # its judgement and timing; the build (size, seconds) is the trial's own
    assert recall("search", graph_digest([other]), root) is None  # a failed trial
    assert recall("another", graph_digest([one]), root) is None  # another search
    remember("search", graph_digest([other]), 6, lend(twin), root)  # a lent result is not lent on
    assert recall("search", graph_digest([other]), root) is None
    forget("search", root)
    assert recall("search", graph_digest([one]), root) is None
    # the twin is drawn with its figures but is the same variant: never a second point on the front
    rows = mark_front([row(4, 12, 3, 0.97), row(7, 12, 3, 0.97) | {"same_graph_as": 4}], ("latency",))
    assert [r["on_front"] for r in rows] == [True, False]
    entry = table_entries({"trials": [{**rows[1], "metric": "map50", "summary": "int8 target 0.95"}]})[0]
    assert "the same graph as trial 4" in entry[-1]


def test_graphs_that_keep_their_weights_beside_them_differ_by_those_weights(tmp_path):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from studio.search.graph_memo import graph_digest

    def graph(folder, weights):
        folder.mkdir()
        tensor = numpy_helper.from_array(np.full((64, 64), weights, np.float32), "w")
        node = helper.make_node("MatMul", ["x", "w"], ["y"], name="/m/MatMul")
        model = helper.make_model(helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])], [tensor]))
        onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
                  size_threshold=0)
        return folder / "model.onnx"

    one, other = graph(tmp_path / "a", 1.0), graph(tmp_path / "b", 2.0)
    assert one.read_bytes() == other.read_bytes()  # the same structure: only the weights beside it differ
    assert graph_digest([one]) != graph_digest([other])
