"""Generation on onnxruntime through onnxruntime-genai: its model builder and its generator.

The builder (``python -m onnxruntime_genai.models.builder``) turns a Hugging Face folder into an ONNX
decoder with a KV cache at FP32, INT8 or INT4 (MatMulNBits) — the field's tool, measured far ahead of
a hand export here (shared/STACK.md). It runs in a child process (cancel kills it) into the cache,
keyed by the model's hash and the precision; the generator is timed token by token like the torch path.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.atomic import publish, scratch_folder
from studio.child_python import module_command
from studio.errors import StudioError, UnsupportedError, first_line
from studio.lm.generate import Generation, GenerationSettings, check_context, eos_ids, token_gaps_ms
from studio.lm.hf_folder import hf_folder
from studio.model import ModelHandle, Task, task_noun
from studio.paths import cache_dir
from studio.tasks import Cancelled, TaskContext

PRECISIONS = ("fp32", "int8", "int4")
POLL_S = 0.2


def genai_folder(handle: ModelHandle, precision: str, extra: dict[str, str] | None = None) -> Path:
    options = json.dumps(extra or {}, sort_keys=True)
    key = hashlib.sha256(f"{handle.provenance.sha256}|{precision}|{options}".encode()).hexdigest()[:16]
    return cache_dir() / "genai" / f"{handle.name}-{precision}-{key}"


def build(handle: ModelHandle, precision: str, ctx: TaskContext | None = None,
          extra: dict[str, str] | None = None) -> Path:
    """The onnxruntime-genai model folder for ``handle`` at ``precision`` (built once, then cached)."""
    ctx = ctx or TaskContext()
    if handle.task != Task.GENERATE:
        raise UnsupportedError(f"{handle.name} is a {task_noun(handle.task)} model; onnxruntime-genai runs causal LMs")
    if precision not in PRECISIONS:
        raise UnsupportedError(f"unknown precision '{precision}'", fix=f"choose one of {', '.join(PRECISIONS)}")
    target = genai_folder(handle, precision, extra)
    if (target / "genai_config.json").is_file():
        return target
    ctx.progress(0.05, "writing a plain Hugging Face folder")
    source = hf_folder(handle)
    ctx.progress(0.2, f"onnxruntime-genai builder, {precision}")
    with scratch_folder(target) as staging:
        command = module_command("onnxruntime_genai.models.builder", "-i", str(source), "-o",
                                 str(staging / "model"), "-p", precision, "-e", "cpu", "-c", str(staging / "cache"))
        if extra:
            command += ["--extra_options", *(f"{k}={v}" for k, v in extra.items())]
        log = staging / "builder.log"
        with open(log, "w") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            while process.poll() is None:
                if ctx.cancel_event.is_set():
                    os.killpg(process.pid, signal.SIGKILL)  # the builder and anything it started
                    process.wait()
                    raise Cancelled()
                time.sleep(POLL_S)
        if process.returncode != 0 or not (staging / "model" / "genai_config.json").is_file():
            reason = builder_failure(log.read_text(errors="replace"))
            raise StudioError(f"the onnxruntime-genai builder failed for {handle.name} at {precision}: {reason}",
                              fix="onnxruntime-genai builds Llama, Mistral, Qwen, Phi, Gemma… decoders; run this one "
                                  "on PyTorch (--runtime torch)")
        ctx.progress(0.9, "checking onnxruntime-genai loads the built model")
        # some option mixes write graphs onnxruntime refuses: never cache one of those
        _check_loads(staging / "model", json.dumps(extra or {}, sort_keys=True))
        publish(staging / "model", target)
    ctx.progress(1.0, "built")
    return target


GGUF_BLOCKS = {"weights": "gguf-blocks-v2"}  # the cache key of the rewrite (bump when gguf_graph changes)
# The base graph for the GGUF blocks: gate and up fused into one MatMulNBits, so one offset term serves both
# (fewer small nodes per token: 43.0 vs 38.5 tok/s at 1 thread, same run, same 97.0 % agreement)
GGUF_BASE = {"fuse_mlp_gate_up": "true"}


def build_gguf_int4(handle: ModelHandle, ctx: TaskContext | None = None) -> Path:
    """The builder's INT4 decoder carrying the GGUF file's own Q4/Q8 blocks instead of re-quantized
    weights (``studio/lm/gguf_graph.py``): built once, then cached."""
    from studio.lm.gguf_graph import rewrite

    ctx = ctx or TaskContext()
    target = genai_folder(handle, "int4", GGUF_BLOCKS)
    if (target / "genai_config.json").is_file():
        return target
    if handle.format != "gguf" or handle.torch_module is None:
        raise UnsupportedError(f"{handle.name} is not a GGUF file; its own blocks exist only there",
                               fix="use the 'rtn' or 'k_quant' algorithm")
    base = build(handle, "int4", ctx, extra=GGUF_BASE)  # the graph (attention, KV cache) whose weights are replaced
    ctx.progress(0.92, "replacing the weights with the GGUF's own blocks")
    with scratch_folder(target) as staging:
        (staging / "model").mkdir()
        report = rewrite(base, staging / "model", Path(handle.provenance.path), handle.torch_module)
        (staging / "model" / "gguf_blocks.json").write_text(json.dumps(report, indent=2))
        _check_loads(staging / "model", json.dumps(GGUF_BLOCKS))
        publish(staging / "model", target)
    ctx.progress(1.0, "built")
    return target


def builder_failure(log: str) -> str:
    """The line of the builder's output that says why it failed: its last, except a frozen bundle's own
    "[PYI-…:ERROR] Failed to execute script" trailer, which would hide the exception above it."""
    lines = [line for line in log.strip().splitlines() if line.strip() and not line.startswith("[PYI-")]
    return lines[-1][:200] if lines else "no output"


def _check_loads(folder: Path, options: str) -> None:
    import onnxruntime_genai as og

    try:
        og.Model(str(folder))
    except RuntimeError as exc:
        first = first_line(exc)
        raise StudioError(f"the onnxruntime-genai builder wrote a model onnxruntime refuses (options {options}): "
                          f"{first}", fix="build with other settings (another algorithm or block size)") from exc


class GenaiGenerator:
    """An onnxruntime-genai model, loaded once, generating with the studio's settings and timing."""

    def __init__(self, handle: ModelHandle, folder: Path, threads: int = 2):
        import onnxruntime_genai as og

        config = og.Config(str(folder))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
        self.og, self.handle, self.folder, self.threads = og, handle, folder, threads
        try:
            self.model = og.Model(config)
        except RuntimeError as exc:  # a graph the builder wrote but onnxruntime refuses
            first = first_line(exc)
            raise StudioError(f"onnxruntime-genai cannot load {folder.name}: {first}", path=folder,
                              fix="rebuild with other settings (another algorithm or block size)") from exc
        self.tokenizer = og.Tokenizer(self.model)
        self.precision = handle.metadata.get("precision") or (folder.name.split("-")[-2] if "-" in folder.name
                                                               else "?")
        self.runtime = f"onnxruntime-genai {og.__version__} {self.precision}"

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.glob("*.onnx*"))

    def generate(self, prompt: str, settings: GenerationSettings | None = None,
                 on_text: Callable[[str], None] | None = None, prompt_token_ids: list[int] | None = None) -> Generation:
        from studio.lm.generate import prompt_ids

        settings = settings or GenerationSettings()
        ids = prompt_token_ids or prompt_ids(self.handle, prompt, settings.chat)[0].tolist()
        check_context(self.handle, len(ids), settings.max_new_tokens)
        params = self.og.GeneratorParams(self.model)
        search: dict[str, Any] = {"max_length": len(ids) + settings.max_new_tokens, "do_sample": settings.sample}
        if settings.sample:
            search |= {"temperature": settings.temperature, "top_p": settings.top_p, "random_seed": settings.seed}
        params.set_search_options(**search)
        generator = self.og.Generator(self.model, params)
        stream = self.tokenizer.create_stream()
        tokens: list[int] = []
        stamps: list[float] = []
        text = ""
        eos = eos_ids(self.handle.tokenizer)
        start = time.perf_counter()
        generator.append_tokens([ids])
        while not generator.is_done() and len(tokens) < settings.max_new_tokens:
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            stamps.append(time.perf_counter())
            if token in eos:
                break
            tokens.append(token)
            text += stream.decode(token)
            if on_text is not None:
                on_text(text)
        end = time.perf_counter()
        decode = ((len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0]
                  else None)
        return Generation(
            prompt=prompt, text=self.handle.tokenizer.decode(tokens, skip_special_tokens=True), prompt_tokens=len(ids),
            new_tokens=tokens, ttft_ms=round(((stamps[0] if stamps else end) - start) * 1e3, 2),
            decode_tokens_per_s=None if decode is None else round(decode, 2), total_ms=round((end - start) * 1e3, 2),
            token_ms=token_gaps_ms(stamps),
            method=f"onnxruntime-genai {self.og.__version__} {self.precision} (its model builder), "
                   f"{self.threads} thread(s), {'sampling' if settings.sample else 'greedy'}; time to first token = "
                   "prompt in → first token out; decode tokens/s over the tokens after the first")

