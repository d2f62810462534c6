"""The variants table: each variant's row from its optimize report, and the words the window shows for it."""

from __future__ import annotations

from pathlib import Path

from studio.paths import cache_dir
from studio.recipe import Recipe, Step
from studio.session import Session, Variant
from tests.unit.handles import SHA, handle
from ui.training_chart import recovery_reports, recovery_summary
from ui.training_devices import describe, resolve
from ui.variants_panel import THIN, evidence_text, evidence_tooltip, fidelity_text

INT8 = Recipe((Step("prune.channels", {"ratio": 0.3}, 4), Step("quantize.static_int8", {}, 1)))


def _report(base_p50: float, p50: float, thin: bool = True) -> dict:
    return {"baseline": {"latency_ms": {"p50": base_p50}},
            "variant": {"size_mb": 3.2, "params": 1_000_000, "latency_ms": {"p50": p50}},
            "speedup_p50": round(base_p50 / p50, 2),
            "fidelity": {"metric": "map50", "value": 0.74, "frame_set": "12 bundled frames",
                         "interval": {"low": 0.52, "high": 0.88, "level": 0.95, "method": "percentile bootstrap"},
                         "evidence": {"frames": 12, "count": 26, "unit": "baseline boxes", "thin": thin,
                                      **({"warning": "thin evidence: 26 boxes"} if thin else {})}}}


def _session() -> Session:
    base = handle()
    return Session("zoo:net", base, [Variant("base", Recipe(()), base)])


def test_the_base_row_is_the_reference_measured_from_the_handle():
    row = _session().rows()[0]
    assert row == {"key": "base", "recipe": "base model", "size_mb": 12.346, "params": 3_151_904, "p50_ms": None,
                   "speedup": None, "fidelity": 1.0, "fidelity_metric": "reference", "fidelity_interval": None,
                   "fidelity_evidence": None, "judged_on": None}


def test_a_variant_row_comes_from_its_report():
    variant = Variant("v1", INT8, handle(size_bytes=1), Path("/cache/v1"), _report(20.0, 8.0))
    row = variant.row()
    assert row["recipe"] == variant.title == "prune.channels → quantize.static_int8"
    assert (row["size_mb"], row["params"], row["p50_ms"], row["speedup"]) == (3.2, 1_000_000, 8.0, 2.5)
    assert (row["fidelity"], row["fidelity_metric"], row["judged_on"]) == (0.74, "map50", "12 bundled frames")
    assert row["fidelity_evidence"]["count"] == 26


def test_a_variant_whose_report_lacks_fidelity_shows_none_not_the_reference():
    row = Variant("v1", INT8, handle(), None, {"variant": {}}).row()
    assert row["fidelity"] is None and row["fidelity_metric"] == "reference" and row["size_mb"] == 12.346


def test_the_base_row_takes_the_latency_measured_beside_the_newest_variant():
    session = _session()
    session.variants += [Variant("v1", INT8, handle(), None, _report(20.0, 8.0)),
                         Variant("v2", INT8, handle(), None, _report(22.0, 11.0)),
                         Variant("v3", INT8, handle())]  # still being built: no report
    base, *rest = session.rows()
    assert (base["p50_ms"], base["speedup"]) == (22.0, 1.0)
    assert [row["p50_ms"] for row in rest] == [8.0, 11.0, None]
    assert session.get("v2").report["speedup_p50"] == 2.0


def test_the_manifest_lists_only_published_variants():
    session = _session()
    session.frames = Path("/data/cams")
    session.variants.append(Variant("v1", INT8, handle(), Path("/cache/v1"), _report(20.0, 8.0)))
    assert session.manifest() == {"spec": "zoo:net", "trust": False, "frames": "/data/cams",
                                  "variants": [{"key": "v1", "folder": "/cache/v1"}]}


def test_variant_folders_are_named_after_the_model_and_its_hash():
    session = Session("x", handle("my model/v2: final!" + "x" * 50), [])
    assert session.folder.parent == cache_dir() / "variants"
    assert session.folder.name == "my_model_v2_final_" + "x" * 22 + "-" + SHA[:10]


def test_the_fidelity_column_gives_the_interval():
    rows = {row["key"]: row for row in _session().rows()}
    assert fidelity_text(rows["base"]) == "reference"
    row = Variant("v1", INT8, handle(), None, _report(20.0, 8.0)).row()
    assert fidelity_text(row) == "0.740 map50 [0.52–0.88]"
    assert fidelity_text({**row, "fidelity_interval": None}) == "0.740 map50"
    assert fidelity_text({**row, "fidelity": None}) == "–"


def test_the_evidence_column_and_its_tooltip():
    row = Variant("v1", INT8, handle(), None, _report(20.0, 8.0)).row()
    assert evidence_text(row) == f"26 boxes / 12 frames {THIN}"
    assert evidence_tooltip(row).splitlines() == ["judged on: 12 bundled frames",
                                                  "95 % interval 0.52–0.88 (percentile bootstrap)",
                                                  "thin evidence: 26 boxes"]
    plenty = Variant("v1", INT8, handle(), None, _report(20.0, 8.0, thin=False)).row()
    assert evidence_text(plenty) == "26 boxes / 12 frames"
    frames = {**plenty, "fidelity_evidence": {"count": 60, "frames": 60, "unit": "frames", "thin": False}}
    assert evidence_text(frames) == "60 frames"
    assert evidence_text(_session().rows()[0]) == "–"
    assert evidence_tooltip(_session().rows()[0]) == "judged on: –"


def test_recovery_summaries_from_an_optimize_report():
    recovery = {"stopped": "stopped early", "steps": 30, "planned_steps": 50, "best_step": 25, "fidelity_best": 0.81,
                "device": {"name": "CPU x86_64"}, "minutes": 2.345}
    report = {"steps": [{"details": [{"recovery": recovery}, "a note"]}, {"details": None}, {}]}
    assert recovery_reports(report) == [recovery] and recovery_reports(None) == []
    assert recovery_summary(recovery) == ("stopped early at step 30 of 50; kept step 25 (held-out fidelity 0.81); "
                                          "trained on CPU x86_64 for 2.3 min")
    assert recovery_summary({}).startswith("ended at step None") and "trained on ?" in recovery_summary({})


def test_training_device_words():
    cpu_only = [("cpu", "CPU x86_64")]
    with_gpu = [("cuda", "NVIDIA H100"), ("cpu", "CPU x86_64")]
    assert describe(cpu_only) == "Training device: CPU — no GPU seen by torch"
    assert describe(with_gpu) == "Training device: CUDA: NVIDIA H100 (auto uses it); CPU also available"
    assert resolve("auto", with_gpu) == "CUDA: NVIDIA H100" and resolve("auto", cpu_only) == "CPU x86_64"
    assert resolve("cuda", cpu_only) == "CUDA (not present: the run will refuse)"
    assert resolve("mps", None) == "device 'mps' (named when the run ends)"
