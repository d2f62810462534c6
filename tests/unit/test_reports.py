"""The report types: every parity kind renders, and a parity saved before ``kind`` existed still reads."""

from __future__ import annotations

import pytest

from studio import report_text
from studio.errors import BadInputError
from studio.reports import language_score, with_kind

EVIDENCE = {"frames": 12, "count": 80, "unit": "baseline boxes", "enough_at": 50, "thin": False}
VISION = {"kind": "vision", "max_abs_diff": 0.00042, "frames": 12, "frame_set": "12 bundled frames",
          "input_shape": [1, 3, 640, 640], "method": "m",
          "agreement": {"metric": "map50", "value": 0.99, "interval": {"low": 0.97, "high": 1.0, "level": 0.95,
                                                                       "method": "b"},
                        "evidence": EVIDENCE, "method": "m"}}
ENCODER = {"kind": "lm_encoder", "metric": "cosine to the pipeline", "min_cosine": 0.999987, "cosines": [1.0],
           "sentences": 1, "norms": [1.0], "ms_per_sentence": 4.2, "passed": True, "threshold": 0.99}
DECODER = {"kind": "lm_decoder", "metric": "argmax agreement", "argmax_agreement": 0.9867, "positions": 75,
           "ms_per_window": 310.0, "passed": True, "threshold": 0.95}


def _report(*parities: dict | None) -> dict:
    exports = [{"format": f"f{index}", "path": f"/out/m{index}", "precision": "fp32", "size_mb": 1.5,
                "export_seconds": 2.0, "parity": parity} for index, parity in enumerate(parities)]
    return {"model": "m", "precision": "fp32", "recipe": {}, "exports": exports, "frames": {"source": "bundled media"},
            "machine": {}}


def _without_kind(parity: dict) -> dict:
    return {k: v for k, v in parity.items() if k != "kind"}


def test_each_parity_kind_renders_its_own_figure():
    lines = report_text.export_text(_report(VISION, ENCODER, DECODER, None)).splitlines()
    assert "max |Δ| 4.20e-04  map50 0.99 [0.97–1.0] on 80 baseline boxes in 12 frames" in lines[1]
    assert "cosine to the pipeline 0.999987 (threshold 0.99)" in lines[2]
    assert "argmax agreement 0.9867 (threshold 0.95)" in lines[3]
    assert "spec validated (running it needs macOS)" in lines[4]
    assert lines[5] == "parity judged on: 12 bundled frames"
    assert len(lines) == 6  # evidence enough: no warning


def test_a_parity_saved_without_kind_renders_as_before():
    old = _report(*(_without_kind(p) for p in (VISION, ENCODER, DECODER)))
    assert report_text.export_text(old) == report_text.export_text(_report(VISION, ENCODER, DECODER))


@pytest.mark.parametrize("parity", [VISION, ENCODER, DECODER])
def test_with_kind_infers_the_kind_of_an_old_parity_and_keeps_every_key(parity):
    assert with_kind(_without_kind(parity)) == parity
    assert with_kind(parity) == parity


def test_thin_vision_evidence_is_warned_about_once():
    thin = {**EVIDENCE, "count": 9, "thin": True, "warning": "thin evidence: 9 baseline boxes"}
    parity = {**VISION, "agreement": {**VISION["agreement"], "evidence": thin}}
    lines = report_text.export_text(_report(parity, parity)).splitlines()
    assert lines[-1] == "warning: thin evidence: 9 baseline boxes"
    assert sum(line.startswith("warning:") for line in lines) == 1


def test_language_score_is_the_figure_the_threshold_applies_to():
    assert language_score(ENCODER) == 0.999987
    assert language_score(DECODER) == 0.9867


@pytest.mark.parametrize("parity", [{"kind": "audio", "metric": "m"}, {"metric": "m", "threshold": 0.9}])
def test_an_unknown_parity_is_refused_by_name(parity):
    with pytest.raises(BadInputError, match="not a parity result"):
        with_kind(parity)
