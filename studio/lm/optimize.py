"""Measuring a language-model variant against its base, for ``deploy-studio optimize`` and the GUI.

Generators: greedy generations of the same prompts, base and variant interleaved in one run; latency
is the gap between consecutive tokens (one decode step), time to first token and decode tokens/s per
generation; fidelity is teacher-forced token agreement with the FP32 model, and perplexity of both on
the shipped text (``studio.lm.quality``). Encoders: a batch of the fixed sentences, interleaved;
fidelity is the mean cosine between the two models' embeddings, with retrieval agreement beside it.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from studio.lm.agreement import PROMPTS, agreement, argmax_of, reference_continuations
from studio.lm.generate import GenerationSettings
from studio.lm.quality import DOCUMENTS, QUERIES, perplexity, retrieval_agreement, text_tokens
from studio.lm.runners import text_encoder, text_generator, token_logits
from studio.metrics import summarize_ms
from studio.model import ModelHandle, Task
from studio.tasks import TaskContext
from studio.timing import alternating, interleaved_ms
from studio.vectors import row_cosines

TIMING_PROMPTS = ("Write a short story about a robot who learns to paint.", "Explain how a bicycle works.")


def language_report(baseline: ModelHandle, variant: ModelHandle, *, threads: int, quick: bool,
                    ctx: TaskContext) -> dict[str, Any]:
    if baseline.task == Task.EMBED:
        return _encoder_report(baseline, variant, threads=threads, runs=10 if quick else 30, ctx=ctx)
    return _generator_report(baseline, variant, threads=threads, quick=quick, ctx=ctx)


def _generator_report(baseline: ModelHandle, variant: ModelHandle, *, threads: int, quick: bool,
                      ctx: TaskContext) -> dict[str, Any]:
    prompts, tokens = (PROMPTS[:4], 24) if quick else (PROMPTS, 32)
    new_tokens = 32 if quick else 64
    text_limit = 256 if quick else 1024
    generators = [text_generator(h, threads) for h in (baseline, variant)]
    settings = GenerationSettings(max_new_tokens=new_tokens, threads=threads)
    for generator in generators:  # warm-up: first calls allocate and compile
        generator.generate(TIMING_PROMPTS[0], GenerationSettings(max_new_tokens=4, threads=threads))
    runs: list[list[Any]] = [[], []]
    for index, prompt in enumerate(TIMING_PROMPTS * (1 if quick else 2)):
        ctx.check_cancelled()
        ctx.progress(0.05 + 0.4 * index / (2 * len(TIMING_PROMPTS)), "timing generation")
        for which in alternating(2, index):  # alternate who goes first
            runs[which].append(generators[which].generate(prompt, settings))
    ctx.progress(0.5, "FP32 reference tokens")
    pairs = reference_continuations(baseline, prompts, tokens)
    ctx.progress(0.65, "teacher-forced agreement")
    agree = agreement(argmax_of(token_logits(variant, threads)), pairs)
    ctx.progress(0.8, "perplexity")
    text = text_tokens(baseline.tokenizer, text_limit)
    window = 128 if quick else 256
    ppl = [perplexity(token_logits(h, threads), text, window) for h in (baseline, variant)]
    sides = [_generation_side(h, g, r, p) for h, g, r, p in zip((baseline, variant), generators, runs, ppl,
                                                                 strict=True)]
    speedup = sides[0]["latency_ms"]["p50"] / sides[1]["latency_ms"]["p50"]
    warnings = [] if speedup >= 1.0 else [f"the variant decodes slower than the base model here ({speedup:.2f}×)"]
    return {
        "baseline": sides[0], "variant": sides[1], "speedup_p50": round(speedup, 3),
        "size_ratio": round(variant.size_bytes / max(baseline.size_bytes, 1), 4),
        "fidelity": {"metric": "token agreement", "value": agree["agreement"], "detail": agree},
        "perplexity": {"baseline": ppl[0]["perplexity"], "variant": ppl[1]["perplexity"], "method": ppl[0]["method"]},
        "warnings": warnings,
        "method": {
            "latency": f"gap between consecutive generated tokens (one decode step with the KV cache), greedy, "
                       f"{len(runs[0])} generation(s) of up to {new_tokens} tokens per model after a warm-up, base "
                       f"and variant interleaved in alternating order, {threads} thread(s)",
            "size": "bytes of the weight / graph files on disk",
        },
    }


def _generation_side(handle: ModelHandle, generator: Any, runs: list[Any], ppl: dict[str, Any]) -> dict[str, Any]:
    gaps = [gap for run in runs for gap in run.token_ms]
    layers = [run.layers_used for run in runs if run.layers_used is not None]
    return {
        "name": handle.display_name, "runtime": getattr(generator, "runtime", None) or runs[0].method.split(",")[0],
        "size_mb": round(handle.size_bytes / 1e6, 3), "params": handle.params,
        "latency_ms": summarize_ms(gaps or [float("nan")]),
        "decode_tokens_per_s": _median([r.decode_tokens_per_s for r in runs]),
        "ttft_ms": _median([r.ttft_ms for r in runs]), "perplexity": ppl["perplexity"],
        "layers_used": round(statistics.mean(layers), 2) if layers else None,
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def _encoder_report(baseline: ModelHandle, variant: ModelHandle, *, threads: int, runs: int,
                    ctx: TaskContext) -> dict[str, Any]:
    encoders = [text_encoder(h, threads) for h in (baseline, variant)]
    sentences = [q for q, _ in QUERIES] + list(DOCUMENTS)

    def each_run(index: int) -> None:
        ctx.check_cancelled()
        ctx.progress(0.8 * index / (runs + 2), "timing the encoders")

    times = interleaved_ms([e.encode for e in encoders], [sentences] * (runs + 2), warmup=2, on_input=each_run)
    cosines = row_cosines(*(np.asarray(e.encode(sentences), np.float64) for e in encoders))
    retrieval = retrieval_agreement(encoders[0].encode, encoders[1].encode)
    sides = [{"name": h.display_name, "runtime": e.runtime, "size_mb": round(h.size_bytes / 1e6, 3),
              "params": h.params, "latency_ms": summarize_ms(t)} for h, e, t in zip((baseline, variant), encoders,
                                                                                    times, strict=True)]
    speedup = sides[0]["latency_ms"]["p50"] / sides[1]["latency_ms"]["p50"]
    return {
        "baseline": sides[0], "variant": sides[1], "speedup_p50": round(speedup, 3),
        "size_ratio": round(variant.size_bytes / max(baseline.size_bytes, 1), 4),
        "fidelity": {"metric": "mean cosine", "value": round(float(cosines.mean()), 4),
                     "min_cosine": round(float(cosines.min()), 4), "sentences": len(sentences)},
        "retrieval": retrieval,
        "warnings": [] if speedup >= 1.0 else [f"the variant is slower than the base model here ({speedup:.2f}×)"],
        "method": {"latency": f"one batch of {len(sentences)} fixed sentences per run, {runs} runs after 2 warm-up, "
                              f"base and variant interleaved, {threads} thread(s)",
                   "size": "bytes of the weight / graph files on disk"},
    }
