"""INT8 TFLite of a real detector: what stays float is found by the sensitivity search, not by op names.

zoo:yolov8s-fall (real weights) is exported to INT8 TFLite through the product's own export; the report says
which units the search kept float, on which frames it chose (never the judging frames) and the fidelity it
reached on the judging frames. The search itself, given frames that show INT8's damage, must keep the decoding
float as the old rule did — the decoding ops named by a regex (DFL, the head's own arithmetic, the coordinate
normalisation) kept float — quantized from the same FP32 file with the same calibration and judged alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.loaders import load_model
from studio.tasks import TaskContext

# The rule the search replaces, kept here only as the reference it must match.
NAMED_DECODE_SCOPE = r"DFL_dfl|head\.Detect_\d+;|_NormalizeCoords;"


@pytest.fixture(scope="module")
def searched(fall_tflite) -> dict:
    """The product's INT8 and FP32 TFLite exports, made once per run (tests/conftest.py)."""
    return {"int8": fall_tflite["int8_item"], "fp32": fall_tflite["tflite"], "work": fall_tflite["work"]}


def _named_rule_fidelity(fp32: Path, work: Path) -> dict:
    """The regex rule's INT8 file from the same FP32 file and calibration, scored as the search scores."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from plugins.export.tflite_quantize import SEARCH_FRAMES, _signature, calibration_inputs, input_hw
    from plugins.export.tflite_sensitivity import TfliteScorer
    from studio.evaluate.frames import judging_frames
    from studio.runtime.litert_backend import LiteRtBackend

    model, ctx = load_model("zoo:yolov8s-fall"), TaskContext()
    engine = quantizer.Quantizer(str(fp32))
    engine.load_quantization_recipe([*recipe.static_wi8_ai8(), {
        "regex": NAMED_DECODE_SCOPE, "operation": "*", "algorithm_key": AlgorithmName.NO_QUANTIZE.value,
        "op_config": {}}])
    key, name, shape = _signature(fp32)
    tensors = calibration_inputs(model, shape, 32, ctx, choosing=SEARCH_FRAMES)[0]  # as the search calibrates
    calibration = engine.calibrate({key: [{name: t} for t in tensors]}, num_threads=2)
    named = work / "named.tflite"
    engine.quantize(calibration, enable_progress_report=False).export_model(str(named), overwrite=True)
    scorer = TfliteScorer(model, fp32, lambda p: LiteRtBackend(p, threads=2, box_decoder=model.decoder,
                                                               boxes_known=True), input_hw(shape),
                          *judging_frames(SEARCH_FRAMES, ctx))
    return scorer.score(named, with_interval=True)


def test_the_export_chooses_apart_from_the_judging_frames_and_reports_them(searched):
    item = searched["int8"]
    search = item["int8_search"]
    # bundled media: chosen on the calibration frames (none to spare), judged on the judging frames
    assert "of the calibration frames" in search["choosing"]["frames"] and "bus.jpg" in search["judging_frames"]
    assert (item["calibration"]["frames"], item["calibration"]["choosing_frames"]) == (32, 12)
    assert search["target_met"] == (search["fidelity_final"] >= search["target"])
    assert search["choosing"]["target_met"] == (search["choosing"]["fidelity_final"] >= search["target"])
    # The bundled judging frames hold a dozen of the fall detector's boxes: said, with the interval.
    assert search["evidence"]["thin"] and search["fidelity_final_interval"]["low"] <= search["fidelity_final"]
    # The figure it reports is the export's own verification's (FP32 ONNX on onnxruntime, the same frames).
    assert abs(item["parity"]["agreement"]["map50"] - search["fidelity_final"]) <= 0.03, (item["parity"], search)
    assert "kept float by sensitivity search" in item["recipe"] and item["tensor_dtypes"].get("int8", 0) > 100
    # Most of the network stays INT8: the search keeps a handful of head units at most, not the model.
    assert search["kept_ops"] < search["ops"] / 4


def test_search_keeps_the_decoding_float_where_its_frames_show_the_damage(searched):
    """The search itself, choosing on the bundled judging frames (bus.jpg and zidane.jpg, where the fall detector
    finds most of its people and INT8 decoding visibly costs boxes): the bundled calibration side holds too few
    of its boxes for plain INT8 to show any loss there, so the export above may rightly keep nothing float."""
    from ai_edge_quantizer import quantizer, recipe

    from plugins.export.tflite_quantize import SEARCH_FRAMES, _signature, calibration_inputs, input_hw
    from plugins.export.tflite_sensitivity import TfliteScorer, search_int8
    from studio.evaluate.frames import judging_frames
    from studio.runtime.litert_backend import LiteRtBackend

    fp32, work = searched["fp32"], searched["work"]
    model, ctx = load_model("zoo:yolov8s-fall"), TaskContext()
    key, name, shape = _signature(fp32)
    engine = quantizer.Quantizer(str(fp32))
    engine.load_quantization_recipe(list(recipe.static_wi8_ai8()))
    tensors = calibration_inputs(model, shape, 32, ctx, choosing=SEARCH_FRAMES)[0]  # as the export calibrates
    calibration = engine.calibrate({key: [{name: t} for t in tensors]}, num_threads=2)
    scorer = TfliteScorer(model, fp32, lambda p: LiteRtBackend(p, threads=2, box_decoder=model.decoder,
                                                               boxes_known=True), input_hw(shape),
                          *judging_frames(SEARCH_FRAMES, ctx))
    (work / "mechanism").mkdir(exist_ok=True)
    search = search_int8(fp32, work / "mechanism.tflite", calibration, list(recipe.static_wi8_ai8()), scorer, scorer,
                         work / "mechanism", ctx, target_fidelity=0.95, max_candidates=6)
    # Quantized alone, the head's own decoding arithmetic (or its DFL) costs the most fidelity of any unit.
    decoding = [row["unit"] for row in search["sensitivity"] if "Detect" in row["unit"]
                and ("[own ops]" in row["unit"] or "DFL" in row["unit"])]
    assert decoding and decoding[0] in search["kept_in_float"], search["sensitivity"]
    assert search["target_met"] and search["fidelity_final"] > search["fidelity_full_int8"]
    assert search["kept_ops"] < search["ops"] / 4
    named = _named_rule_fidelity(fp32, work)
    assert search["fidelity_final"] >= named["interval"]["low"], (search["fidelity_final"], named)
