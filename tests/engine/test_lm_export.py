"""Language models exported as ONNX folders and re-opened by plain onnxruntime (not onnxruntime-genai)."""

from __future__ import annotations

import pytest

from studio.errors import UnsupportedError
from studio.export import run_export
from studio.lm.generate import GenerationSettings
from studio.lm.runners import text_encoder, text_generator
from studio.loaders import load_model
from tests.engine.cli_helpers import run_cli, run_json


def test_decoder_int8_folder_carries_a_kv_cache_that_plain_onnxruntime_verifies(tmp_path, smollm):
    report = run_json("export", "zoo:smollm2-135m", "--to", "onnx", "--precision", "int8", "-o", tmp_path)
    item = report["exports"][0]
    verified = item["verified"]
    assert verified["weights"] == "int8" and verified["kv_cache_inputs"] == 60  # 30 layers × key/value
    assert "not onnxruntime-genai" in verified["runtime"]
    assert verified["argmax_agreement_with_pytorch_fp32"] >= 0.9
    assert verified["cache_step_vs_reread_max_abs"] < 0.1 * verified["logit_scale"]
    folder = tmp_path / "smollm2-135m-onnx"
    assert item["path"] == str(folder) and (folder / "genai_config.json").is_file()
    from studio.lm.genai import build
    from studio.lm.variants import genai_variant

    settings = GenerationSettings(max_new_tokens=8)
    reopened = text_generator(load_model(folder)).generate("What is the capital of France?", settings)
    built = genai_variant(smollm, build(smollm, "int8"), precision="int8", note="test")  # the cached build
    assert reopened.new_tokens == text_generator(built).generate("What is the capital of France?", settings).new_tokens
    assert len(reopened.new_tokens) == 8
    assert not list(tmp_path.glob(".export-*"))  # staging removed


def test_encoder_export_from_the_cli_reopens_with_its_pooling(tmp_path, minilm):
    report = run_json("export", "zoo:minilm-l6", "--to", "onnx", "-o", tmp_path)
    verified = report["exports"][0]["verified"]
    assert verified["min_cosine_vs_pytorch"] > 0.9999  # FP32 graph + the manifest's mean pooling and L2
    reopened = load_model(tmp_path / "minilm-l6-onnx")
    vectors = text_encoder(reopened).encode(["A man is eating food.", "A man eats bread."])
    reference = text_encoder(minilm).encode(["A man is eating food.", "A man eats bread."])
    assert (vectors * reference).sum(1).min() > 0.9999


def test_pytorch_only_variants_and_wrong_precisions_are_refused_before_writing(tmp_path):
    recipe = tmp_path / "exit.toml"
    recipe.write_text('[[steps]]\nplugin = "early_exit.lm_decoding"\n')
    out = tmp_path / "out"
    with pytest.raises(UnsupportedError, match="PyTorch-only variant"):
        run_export("zoo:smollm2-135m", ["onnx"], out, recipe_path=recipe)
    assert not any(p for p in out.iterdir() if not p.name.startswith(".export-"))
    with pytest.raises(UnsupportedError, match="ONNX only"):
        run_export("zoo:minilm-l6", ["onnx", "tflite"], out, precision="int8")
    done = run_cli("export", "zoo:yolov8s-fall", "--to", "onnx", "--precision", "int4", "-o", out)
    assert done.returncode == 2 and "language models" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_exports_a_recipe_variant(tmp_path):
    recipe = tmp_path / "int8.toml"
    recipe.write_text('[[steps]]\nplugin = "quantize.lm_weights"\n[steps.settings]\nprecision = "int8"\n')
    report = run_json("export", "zoo:minilm-l6", "--to", "onnx", "--recipe", recipe, "-o", tmp_path / "out")
    assert report["recipe"]["steps"][0]["plugin"] == "quantize.lm_weights"
    assert report["exports"][0]["precision_of_weights"] == "int8"
    assert load_model(tmp_path / "out" / "minilm-l6-onnx").metadata["precision"] == "int8"
