"""Small language model on this CPU: FP32 PyTorch against onnxruntime-genai FP32 / INT8 / INT4.

INT4 comes twice: the builder re-quantizing the FP32 weights (``int4``), and the builder's graph carrying
the GGUF file's own Q4_1/Q8_0 blocks (``int4-gguf``, studio/lm/gguf_graph.py; the plugin's INT4 default
for a GGUF).

For each path and thread count, in one run: decode tokens/s and time to first token (median of 3
greedy generations of 64 new tokens from the same prompt), prefill tokens/s (prompt tokens / time to
first token), the model's size on disk, the RSS it added when loaded, and teacher-forced token
agreement with FP32 PyTorch over 10 prompts × 32 tokens (studio.lm.agreement). llama.cpp is added
when ``llama_cpp`` is importable (optional; it builds from source), on the same shipped GGUF, and then
an INT4 head-to-head: both INT4 builds and llama.cpp decoding in alternation, round by round, so a shared
host's changing load falls on every path alike; the INT4 verdict reads its medians.

A second table runs every language-model compression plugin (recipes a user can save) at 2 threads:
decode tokens/s, mean decoder layers per token (early exit), teacher-forced agreement, and
perplexity on the shipped text (studio.lm.quality: pydoc_data's Language Reference sections).

    .venv/bin/python bench/lm.py [--model zoo:smollm2-135m] [--threads 1 2] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

from studio import offline

PROMPT = "Write a short story about a robot who learns to paint."

# A process that only loads the model and generates 32 tokens, then reports its peak RSS.
GENAI_PEAK = """
import json, sys, onnxruntime_genai as og
model = og.Model(sys.argv[1]); tokenizer = og.Tokenizer(model)
params = og.GeneratorParams(model); params.set_search_options(max_length=96)
generator = og.Generator(model, params); generator.append_tokens(tokenizer.encode(sys.argv[2]))
for _ in range(32):
    generator.generate_next_token()
print(json.dumps(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024))
"""
TORCH_PEAK = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, local_files_only=True)
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)
ids = tokenizer(sys.argv[2], return_tensors="pt")["input_ids"]
model.generate(ids, max_new_tokens=32, do_sample=False)
print(json.dumps(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024))
"""


def peak_rss_mb(script: str, folder: str) -> float:
    """Peak RSS of a fresh process that loads the model from ``folder`` and generates (its VmHWM: unlike
    ru_maxrss, it starts afresh at exec instead of inheriting this process's high-water mark)."""
    done = subprocess.run([sys.executable, "-c", script, folder, PROMPT], capture_output=True, text=True,
                          timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        return float("nan")
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def _median(runs: list, key: str) -> float | None:
    values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
    return statistics.median(values) if values else None


INT4_GGUF = "int4-gguf"
LABELS = {INT4_GGUF: "onnxruntime-genai int4, GGUF blocks"}


def label_of(precision: str) -> str:
    return LABELS.get(precision, f"onnxruntime-genai {precision}")


# What the rows measured, by (label, threads), for the verdict on the targets at the end.
MEASURED: dict[tuple[str, int], dict[str, float | None]] = {}


def _row(label: str, threads: int, runs: list, size_mb: float, peak_mb: float, agree: dict | None) -> str:
    decode, ttft = _median(runs, "decode_tokens_per_s"), _median(runs, "ttft_ms")
    MEASURED[(label, threads)] = {"decode": decode, "agreement": None if agree is None else agree["agreement"]}
    prefill = runs[0].prompt_tokens / (ttft / 1e3) if ttft else None
    tokens = statistics.median(len(r.new_tokens) for r in runs)
    agreed = "reference" if agree is None else f"{100 * agree['agreement']:.1f}%"
    return (f"| {label} | {threads} | {'–' if decode is None else f'{decode:.1f}'} | "
            f"{'–' if prefill is None else f'{prefill:.0f}'} | {'–' if ttft is None else f'{ttft:.0f}'} | "
            f"{tokens:.0f} | {size_mb:.0f} | {peak_mb:.0f} | "
            f"{agreed} |")


SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "A cheetah chases prey across a field.", "Deploy Studio exports models to edge devices.",
             "It is raining in the city today.", "The stock market fell sharply this morning.",
             "She plays the violin beautifully at the concert hall."]


def encoder_rows(model: str, threads_list: list[int], runs: int = 20) -> list[str]:
    """MiniLM: a batch of 8 sentences on PyTorch, onnxruntime FP32 and INT8; cosine to PyTorch per sentence."""
    import torch

    from studio.lm.embed import embed
    from studio.lm.encoder_onnx import OrtEncoder
    from studio.loaders import load_model

    handle = load_model(model)
    reference = embed(handle, SENTENCES)
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        paths = [("PyTorch fp32 (sentence-transformers)", lambda: embed(handle, SENTENCES), handle.size_bytes)]
        for precision in ("fp32", "int8"):
            encoder = OrtEncoder(handle, precision, threads=threads)
            paths.append((f"onnxruntime {precision}", lambda e=encoder: e.encode(SENTENCES),
                          encoder.path.stat().st_size))
        times = {label: [] for label, _, _ in paths}
        for index in range(runs + 2):  # interleaved, first two rounds are warm-up
            for label, run, _ in paths:
                start = time.perf_counter()
                run()
                if index >= 2:
                    times[label].append((time.perf_counter() - start) * 1e3)
        base = statistics.median(times[paths[0][0]])
        for label, run, size in paths:
            vectors = run()
            cosine = float((vectors * reference).sum(1).min())  # both L2-normalised
            median = statistics.median(times[label])
            MEASURED[(label, threads)] = {"speedup": base / median, "cosine": cosine}
            rows.append(f"| {label} | {threads} | {median:.1f} | {base / median:.2f}× | {size / 1e6:.0f} | "
                        f"{cosine:.4f} |")
    return rows


LLAMA_PEAK = """
import json, sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=512, verbose=False)
llm.create_completion(sys.argv[2], max_tokens=32, temperature=0.0)
print(json.dumps(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024))
"""


class LlamaCppRun:
    """What ``_row`` reads from a generation, for llama.cpp's own greedy decoding of the same prompt ids."""

    def __init__(self, prompt_tokens: int, new_tokens: list[int], stamps: list[float], start: float):
        self.prompt_tokens, self.new_tokens = prompt_tokens, new_tokens
        self.ttft_ms = (stamps[0] - start) * 1e3 if stamps else None
        gaps = len(stamps) - 1
        self.decode_tokens_per_s = gaps / (stamps[-1] - stamps[0]) if gaps > 0 and stamps[-1] > stamps[0] else None


def llama_cpp_rows(gguf: str, handle, threads_list: list[int], new_tokens: int, pairs) -> list[str]:
    """llama.cpp on the shipped GGUF (its own Q4_1 weights): same prompt ids, greedy, timed per token."""
    from llama_cpp import Llama

    from studio.lm.agreement import agreement
    from studio.lm.generate import eos_ids, prompt_ids

    ids = prompt_ids(handle, PROMPT, chat=True)[0].tolist()
    eos = eos_ids(handle.tokenizer)
    peak = peak_rss_mb(LLAMA_PEAK, gguf)
    rows = []
    for threads in threads_list:
        llm = Llama(model_path=gguf, n_ctx=1024, n_threads=threads, n_threads_batch=threads, logits_all=True,
                    verbose=False)
        runs = []
        for index in range(4):  # the first is a warm-up
            llm.reset()
            tokens, stamps = [], []
            start = time.perf_counter()
            for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
                stamps.append(time.perf_counter())
                if token in eos or len(tokens) + 1 > new_tokens:
                    break
                tokens.append(token)
            if index:
                runs.append(LlamaCppRun(len(ids), tokens, stamps, start))

        def predict(sequence, prefill=None, model=llm):
            model.reset()
            model.eval(sequence)
            return model.scores[:len(sequence)].argmax(-1)

        agree = agreement(predict, pairs)
        size = os.path.getsize(gguf) / 1e6
        rows.append(_row(f"llama.cpp {importlib.metadata.version('llama_cpp_python')} (GGUF Q4_1 as shipped)",
                         threads, runs, size, peak, agree))
        del llm
    return rows


PLUGIN_RECIPES = (
    ("PyTorch fp32 (reference)", None, {}),
    ("early exit, softmax ≥ 0.9 at ½ ⅔ ⅚ depth", "early_exit.lm_decoding", {}),
    ("early exit, saturation ≥ 0.99 after 10/15/20/25", "early_exit.lm_decoding",
     {"confidence": "saturation", "threshold": 0.99, "exit_layers": "10,15,20,25"}),
    ("low rank, 50 % rank of MLP projections", "lowrank.svd", {"mode": "ratio", "rank_ratio": 0.5, "targets": "mlp"}),
    ("low rank, 99 % energy, all projections", "lowrank.svd", {"mode": "energy", "energy": 0.99}),
    ("ORT int8 weights (lm_weights)", "quantize.lm_weights", {"precision": "int8"}),
    ("ORT int8 weights, block 128", "quantize.lm_weights", {"precision": "int8", "block_size": 128}),
    ("ORT int4 weights (default: the GGUF's own blocks)", "quantize.lm_weights", {"precision": "int4"}),
    ("ORT int4 weights re-quantized (v1 default)", "quantize.lm_weights",
     {"precision": "int4", "algorithm": "default"}),
    ("ORT int4 re-quantized, INT8 LM head", "quantize.lm_weights",
     {"precision": "int4", "head_int8": True, "algorithm": "rtn"}),
    ("ORT int4 re-quantized, k_quant", "quantize.lm_weights", {"precision": "int4", "algorithm": "k_quant"}),
)


def plugin_rows(handle, pairs, threads: int, new_tokens: int) -> list[str]:
    from studio.lm.agreement import agreement, argmax_of
    from studio.lm.generate import GenerationSettings
    from studio.lm.quality import perplexity, text_tokens
    from studio.lm.runners import text_generator, token_logits
    from studio.plugin_api import settings_from_dict
    from studio.registry import default_registry
    from studio.tasks import TaskContext

    registry = default_registry()
    text = text_tokens(handle.tokenizer, 1024)
    settings = GenerationSettings(max_new_tokens=new_tokens, threads=threads)
    rows = []
    for label, plugin_id, values in PLUGIN_RECIPES:
        variant = handle
        if plugin_id:
            plugin = registry.get(plugin_id)
            variant = plugin.apply(handle, settings_from_dict(plugin, values), TaskContext())
        generator = text_generator(variant, threads)
        generator.generate(PROMPT, GenerationSettings(max_new_tokens=4, threads=threads))
        runs = [generator.generate(PROMPT, settings) for _ in range(3)]
        decode = _median(runs, "decode_tokens_per_s")
        layers = _median(runs, "layers_used")
        logits = token_logits(variant, threads)
        agree = agreement(argmax_of(logits), pairs)["agreement"]
        ppl = perplexity(logits, text, 256)["perplexity"]
        # Size as it runs: ONNX files on disk, or a PyTorch model's FP32 weights in memory (like the table above)
        size = variant.size_bytes if variant.metadata.get("lm_runtime") == "genai" else variant.params * 4
        rows.append(f"| {label} | {'–' if decode is None else f'{decode:.1f}'} | "
                    f"{'–' if layers is None else f'{layers:.1f}'} | {size / 1e6:.0f} | "
                    f"{100 * agree:.1f}% | {ppl:.2f} |")
        print(rows[-1], flush=True)
        del generator, logits
    return rows


def print_targets(threads_list: list[int]) -> None:
    """The issue's targets against this run's own rows (nothing here is measured again)."""
    def value(label: str, threads: int, key: str) -> float | None:
        return MEASURED.get((label, threads), {}).get(key)

    print("\nTargets (this run):")
    for threads in threads_list:
        torch_decode = value("PyTorch fp32 (transformers)", threads, "decode")
        int8 = value("onnxruntime-genai int8", threads, "decode")
        agree = value("onnxruntime-genai int8", threads, "agreement")
        if torch_decode and int8 and agree is not None:
            verdict = "met" if int8 / torch_decode >= 5 and agree >= 0.95 else "NOT met"
            print(f"- {threads} thread(s): INT8 decode {int8 / torch_decode:.1f}× FP32 PyTorch with "
                  f"{100 * agree:.1f} % agreement (target ≥ 5× and ≥ 95 %): {verdict}")
        llama = next((v for (label, t), v in MEASURED.items() if label.startswith("llama.cpp") and t == threads), None)
        if llama and ("llama.cpp", threads) in HEAD_TO_HEAD:
            llama = {**llama, "decode": HEAD_TO_HEAD[("llama.cpp", threads)]}
        for precision in ("int4", INT4_GGUF):
            # decode speeds from the alternating head-to-head when it ran (same minutes for every path)
            int4 = HEAD_TO_HEAD.get((label_of(precision), threads)) or value(label_of(precision), threads, "decode")
            int4_agree = value(label_of(precision), threads, "agreement")
            if llama and llama["decode"] and int4 and int4_agree is not None:
                verdict = "met" if int4 >= llama["decode"] and int4_agree >= 0.95 else "NOT met"
                print(f"- {threads} thread(s): {label_of(precision)}: decode {int4:.1f} vs llama.cpp "
                      f"{llama['decode']:.1f} tok/s ({int4 / llama['decode']:.2f}×), agreement "
                      f"{100 * int4_agree:.1f} % vs llama.cpp's {100 * llama['agreement']:.1f} % "
                      f"(target: at least as fast, ≥ 95 %): {verdict}")
        speedup = value("onnxruntime int8", threads, "speedup")
        cosine = value("onnxruntime int8", threads, "cosine")
        if speedup and cosine is not None:
            verdict = "met" if speedup >= 1.8 and cosine >= 0.97 else "NOT met"
            print(f"- {threads} thread(s): MiniLM INT8 {speedup:.2f}× FP32 PyTorch, min cosine {cosine:.4f} "
                  f"(target ≥ 1.8×, ≥ 0.97): {verdict}")


HEAD_TO_HEAD: dict[tuple[str, int], float] = {}


def head_to_head(handle, folders: dict, threads_list: list[int], new_tokens: int, rounds: int = 5) -> list[str]:
    """INT4 on onnxruntime against llama.cpp decoding in alternation, round by round (a shared host's load
    moves between the tables above; here every path sees the same minutes). Median of ``rounds``."""
    from llama_cpp import Llama

    from studio.lm.genai import GenaiGenerator
    from studio.lm.generate import GenerationSettings, eos_ids, prompt_ids

    ids = prompt_ids(handle, PROMPT, chat=True)[0].tolist()
    eos = eos_ids(handle.tokenizer)
    settings = GenerationSettings(max_new_tokens=new_tokens)
    rows = []
    for threads in threads_list:
        paths = {}
        for precision, folder in folders.items():
            if precision.startswith("int4"):
                generator = GenaiGenerator(handle, folder, threads=threads)
                generator.generate(PROMPT, GenerationSettings(max_new_tokens=4))
                paths[label_of(precision)] = lambda g=generator: g.generate(PROMPT, settings).decode_tokens_per_s
        llm = Llama(model_path=handle.provenance.path, n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                    verbose=False)

        def llama_decode(model=llm) -> float | None:
            stamps = []
            for token in model.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
                stamps.append(time.perf_counter())
                if token in eos or len(stamps) > new_tokens:
                    break
            return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None

        llama_decode()  # warm-up
        paths["llama.cpp"] = llama_decode
        measured: dict[str, list[float]] = {label: [] for label in paths}
        for _ in range(rounds):
            for label, decode in paths.items():
                value = decode()
                if value is not None:
                    measured[label].append(value)
        for label, values in measured.items():
            if values:
                HEAD_TO_HEAD[(label, threads)] = statistics.median(values)
                rows.append(f"| {label} | {threads} | {statistics.median(values):.1f} | "
                            f"{min(values):.1f}–{max(values):.1f} |")
        del paths, llm
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:smollm2-135m")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8", "int4", INT4_GGUF])
    parser.add_argument("--skip-plugins", action="store_true", help="leave out the compression-plugin table")
    args = parser.parse_args()
    offline.apply()
    import torch

    from studio.lm.agreement import agreement, argmax_of, reference_continuations
    from studio.lm.genai import GenaiGenerator, build, build_gguf_int4
    from studio.lm.generate import GenerationSettings, generate
    from studio.lm.hf_folder import hf_folder
    from studio.lm.runners import token_logits
    from studio.lm.variants import genai_variant
    from studio.loaders import load_model

    handle = load_model(args.model)
    settings = GenerationSettings(max_new_tokens=args.new_tokens)
    pairs = reference_continuations(handle)
    assert agreement(argmax_of(token_logits(handle)), pairs)["agreement"] == 1.0  # the reference itself
    folders = {precision: build_gguf_int4(handle) if precision == INT4_GGUF else build(handle, precision)
               for precision in args.precisions}
    peaks = {"torch": peak_rss_mb(TORCH_PEAK, str(hf_folder(handle)))}
    peaks |= {precision: peak_rss_mb(GENAI_PEAK, str(folder)) for precision, folder in folders.items()}
    print("| path | threads | decode tok/s | prefill tok/s | first token ms | new tokens | size MB | "
          "peak RSS MB | teacher-forced agreement with FP32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        generate(handle, PROMPT, GenerationSettings(max_new_tokens=4))  # warm-up
        runs = [generate(handle, PROMPT, settings) for _ in range(3)]
        print(_row("PyTorch fp32 (transformers)", threads, runs, handle.params * 4 / 1e6, peaks["torch"], None),
              flush=True)
        for precision, folder in folders.items():
            generator = GenaiGenerator(handle, folder, threads=threads)
            generator.generate(PROMPT, GenerationSettings(max_new_tokens=4))
            runs = [generator.generate(PROMPT, settings) for _ in range(3)]
            variant = genai_variant(handle, folder, precision=precision.split("-")[0], note="bench")
            agree = agreement(argmax_of(token_logits(variant, threads)), pairs)
            print(_row(label_of(precision), threads, runs, generator.size_bytes() / 1e6, peaks[precision],
                       agree),
                  flush=True)
            del generator
    print("\n| encoder path | threads | 8 sentences ms (median of 20) | speed-up | size MB | min cosine to PyTorch |")
    print("|---|---|---|---|---|---|")
    for row in encoder_rows("zoo:minilm-l6", args.threads):
        print(row, flush=True)
    if importlib.util.find_spec("llama_cpp") is None:
        print("\nllama.cpp: not installed (pip install llama-cpp-python builds it from source in a few minutes); "
              "row skipped.")
    else:
        print("\n| reference path | threads | decode tok/s | prefill tok/s | first token ms | new tokens | size MB | "
              "peak RSS MB | teacher-forced agreement with FP32 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in llama_cpp_rows(handle.provenance.path, handle, args.threads, args.new_tokens, pairs):
            print(row, flush=True)
        print("\n| INT4 head-to-head, alternating round by round | threads | decode tok/s (median of 5) | range |")
        print("|---|---|---|---|")
        for row in head_to_head(handle, folders, args.threads, args.new_tokens):
            print(row, flush=True)
    if not args.skip_plugins:
        print("\n| recipe (plugin) at 2 threads | decode tok/s | layers per token | size MB | agreement | "
              "perplexity |")
        print("|---|---|---|---|---|---|")
        plugin_rows(handle, pairs, 2, args.new_tokens)
    print_targets(args.threads)
    print(f"\n{args.model}; prompt {PROMPT!r} with the chat template; {args.new_tokens} new tokens at most, greedy; "
          "medians of 3 after a warm-up; PyTorch size = params × 4 bytes (FP32 in memory); peak RSS = VmHWM of "
          "a fresh process that only loads that model and generates 32 tokens (default threads). Agreement over "
          f"10 prompts × 32 tokens ({time.strftime('%Y-%m-%d')}).")


if __name__ == "__main__":
    main()
