"""INT8 TFLite of a real detector: what stays float is found by the sensitivity search, not by op names.

zoo:yolov8s-fall (real weights) is exported to INT8 TFLite through the product's own export; the report says
which units the search kept float and the fidelity it reached. The reference is the old rule — the decoding
ops named by a regex (DFL, the head's own arithmetic, the coordinate normalisation) kept float — quantized
from the same FP32 file with the same calibration frames and judged on the same frames.
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
    from studio.runtime.litert_backend import LiteRtBackend

    model, ctx = load_model("zoo:yolov8s-fall"), TaskContext()
    engine = quantizer.Quantizer(str(fp32))
    engine.load_quantization_recipe([*recipe.static_wi8_ai8(), {
        "regex": NAMED_DECODE_SCOPE, "operation": "*", "algorithm_key": AlgorithmName.NO_QUANTIZE.value,
        "op_config": {}}])
    key, name, shape = _signature(fp32)
    tensors, _ = calibration_inputs(model, shape, 32, ctx)
    calibration = engine.calibrate({key: [{name: t} for t in tensors]}, num_threads=2)
    named = work / "named.tflite"
    engine.quantize(calibration, enable_progress_report=False).export_model(str(named), overwrite=True)
    scorer = TfliteScorer(model, fp32, lambda p: LiteRtBackend(p, threads=2, box_decoder=model.decoder,
                                                               boxes_known=True), input_hw(shape),
                          SEARCH_FRAMES, ctx)
    return scorer.score(named, with_interval=True)


def test_search_keeps_the_decoding_float_and_matches_the_named_rule(searched):
    item = searched["int8"]
    search = item["int8_search"]
    # Quantized alone, the head's own decoding arithmetic (or its DFL) costs the most fidelity of any unit.
    decoding = [row["unit"] for row in search["sensitivity"] if "Detect" in row["unit"]
                and ("[own ops]" in row["unit"] or "DFL" in row["unit"])]
    assert decoding and decoding[0] in search["kept_in_float"], search["sensitivity"]
    assert search["target_met"] and search["fidelity_final"] >= search["target"]
    assert search["fidelity_final"] > search["fidelity_full_int8"]
    assert "kept float by sensitivity search" in item["recipe"] and item["tensor_dtypes"].get("int8", 0) > 100
    # Most of the network stays INT8: the search keeps a handful of head units, not the model.
    assert search["kept_ops"] < search["ops"] / 4
    named = _named_rule_fidelity(searched["fp32"], searched["work"])
    assert search["fidelity_final"] >= named["interval"]["low"], (search["fidelity_final"], named)
    # The export's own verification (against the FP32 ONNX source, on onnxruntime) agrees.
    assert item["parity"]["agreement"]["map50"] >= named["interval"]["low"]
