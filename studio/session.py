"""What the window works on: one base model and the variants made from it, each a recipe away.

A variant is the base model plus a recipe. Making one runs ``run_optimize`` (the same code as
``deploy-studio optimize``) into a folder under the cache, so every number the variants table shows
(size, params, p50 latency measured interleaved with the base model, fidelity) comes from that
command's report, and every variant can be saved as a recipe and replayed from the command line.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.lm.variants import is_language_model
from studio.loaders import load_model
from studio.model import ModelHandle
from studio.optimize import optimize_model
from studio.paths import cache_dir
from studio.plugin_api import Kind, settings_from_dict
from studio.recipe import Recipe, Step, apply_recipe, load_recipe, resolved_recipe, save_recipe
from studio.registry import default_registry
from studio.subprocess_job import optimize_in_subprocess
from studio.tasks import TaskContext
from studio.torch_lock import TORCH_MODULE_LOCK

LATENCY_RUNS = 20
FIDELITY_FRAMES = 12
OWN_FRAMES_FIDELITY = 60  # the user's own frames are worth judging on more than the dozen bundled ones
LM_THREADS = 2


@dataclass
class Variant:
    key: str  # "base", "v1", "v2" …
    recipe: Recipe
    handle: ModelHandle
    folder: Path | None = None
    report: dict[str, Any] | None = None

    @property
    def title(self) -> str:
        return " → ".join(step.plugin for step in self.recipe.steps) or "base model"

    def row(self) -> dict[str, Any]:
        """What the variants table and the Pareto plot show, all from the optimize report."""
        side = (self.report or {}).get("variant", {})
        fidelity = (self.report or {}).get("fidelity") or {}
        return {
            "key": self.key, "recipe": self.title,
            "size_mb": side.get("size_mb", round(self.handle.size_bytes / 1e6, 3)),
            "params": side.get("params", self.handle.params),
            "p50_ms": (side.get("latency_ms") or {}).get("p50"),
            "speedup": (self.report or {}).get("speedup_p50"),
            "fidelity": fidelity.get("value", 1.0 if self.report is None else None),
            "fidelity_metric": fidelity.get("metric", "reference"),
            "fidelity_interval": fidelity.get("interval"),
            "fidelity_evidence": fidelity.get("evidence"),
            "judged_on": fidelity.get("frame_set"),
        }


@dataclass
class Session:
    spec: str
    baseline: ModelHandle
    variants: list[Variant] = field(default_factory=list)
    trust: bool = False
    # The model's own frames for judging and calibration (a folder or a video; None: the bundled media).
    frames: Path | None = None

    @classmethod
    def open(cls, spec: str | Path, *, trust: bool = False) -> Session:
        handle = load_model(spec, trust=trust)
        return cls(str(spec), handle, [Variant("base", Recipe(()), handle)], trust)

    def rows(self) -> list[dict[str, Any]]:
        """Table rows; the base model's latency is the one measured beside the newest variant."""
        rows = [variant.row() for variant in self.variants]
        latest = next((v.report for v in reversed(self.variants) if v.report), None)
        if latest is not None and rows and self.variants[0].key == "base":
            rows[0]["p50_ms"] = latest["baseline"]["latency_ms"]["p50"]
            rows[0]["speedup"] = 1.0
        return rows

    def get(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)

    @property
    def folder(self) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.baseline.name)[:40]
        return cache_dir() / "variants" / f"{slug}-{self.baseline.provenance.sha256[:10]}"

    def derive(self, parent_key: str, plugin_id: str, settings: dict[str, Any], ctx: TaskContext) -> Variant:
        """A new variant: ``parent``'s recipe plus one step, built and measured by ``run_optimize``."""
        registry = default_registry()
        plugin = registry.get(plugin_id)
        settings_from_dict(plugin, settings, plugin.settings_version)  # a bad value fails here, before work
        parent = self.get(parent_key)
        recipe = Recipe((*parent.recipe.steps, Step(plugin_id, dict(settings), plugin.settings_version)))
        return self.build(recipe, ctx)

    def build(self, recipe: Recipe, ctx: TaskContext) -> Variant:
        registry = default_registry()
        recipe = resolved_recipe(recipe, registry)
        key = f"v{sum(v.key != 'base' for v in self.variants) + 1}"
        folder = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{key}"
        self.folder.mkdir(parents=True, exist_ok=True)
        if is_language_model(self.baseline):
            # The variant's handle is kept as made: its files (onnxruntime-genai or encoder graphs) live in
            # the cache, and a PyTorch variant (low rank, early exit) is already in memory.
            with TORCH_MODULE_LOCK:  # in this process: no other job may trace the model meanwhile
                report, handle = optimize_model(self.baseline, recipe, folder, threads=LM_THREADS, quick=True,
                                                ctx=ctx)
            variant = Variant(key, recipe, handle, folder, report)
            self.variants.append(variant)
            return variant
        with tempfile.TemporaryDirectory(dir=self.folder) as scratch:
            recipe_path = Path(scratch) / "recipe.toml"
            save_recipe(recipe, recipe_path)
            count = FIDELITY_FRAMES if self.frames is None else OWN_FRAMES_FIDELITY
            report = optimize_in_subprocess(self.spec, recipe_path, folder, runs=LATENCY_RUNS, fidelity_frames=count,
                                            trust=self.trust, frames=self.frames, ctx=ctx)
        variant = Variant(key, recipe, self._reload(folder, recipe, ctx), folder, report)
        self.variants.append(variant)
        return variant

    def load_recipe(self, path: Path, ctx: TaskContext) -> Variant:
        return self.build(load_recipe(Path(path)), ctx)

    def save_recipe(self, key: str, path: Path) -> Path:
        save_recipe(self.get(key).recipe, Path(path))
        return Path(path)

    # -- the workspace: what a restart needs to rebuild this session (studio.workspace) ---------------
    def manifest(self) -> dict[str, Any]:
        return {"spec": self.spec, "trust": self.trust, "frames": None if self.frames is None else str(self.frames),
                "variants": [{"key": v.key, "folder": str(v.folder)} for v in self.variants if v.folder is not None]}

    @classmethod
    def restore(cls, manifest: dict[str, Any], ctx: TaskContext,
                published_since: float | None = None) -> tuple[Session, list[str]]:
        """The session a manifest describes: the model reopened, each published variant reloaded from its
        folder (report and recipe read back). Variants whose folder is gone are named, not fatal.

        ``published_since`` (when the manifest was saved): variants published after it — in the moment
        between a worker publishing and the window listing it — are found in the folder and kept too."""
        session = cls.open(manifest["spec"], trust=bool(manifest.get("trust")))
        session.frames = Path(manifest["frames"]) if manifest.get("frames") else None
        missing: list[str] = []
        entries = list(manifest.get("variants", []))
        if published_since is not None and session.folder.is_dir():
            listed = {str(Path(entry["folder"])) for entry in entries}
            taken = {entry["key"] for entry in entries}
            for folder in sorted(session.folder.iterdir()):
                if (str(folder) not in listed and (folder / "report.json").is_file()
                        and folder.stat().st_mtime > published_since):
                    key = next(f"v{n}" for n in range(1, 10_000) if f"v{n}" not in taken)
                    taken.add(key)
                    entries.append({"key": key, "folder": str(folder)})
        for index, entry in enumerate(entries):
            ctx.check_cancelled()
            folder = Path(entry["folder"])
            if not (folder / "recipe.toml").is_file() or not (folder / "report.json").is_file():
                missing.append(entry["key"])
                continue
            recipe = resolved_recipe(load_recipe(folder / "recipe.toml"), default_registry())
            report = json.loads((folder / "report.json").read_text())
            handle = session._restored_handle(folder, recipe, ctx)
            session.variants.append(Variant(entry["key"], recipe, handle, folder, report))
            ctx.progress((index + 1) / max(len(entries), 1), f"variant {entry['key']} restored")
        return session, missing

    def _restored_handle(self, folder: Path, recipe: Recipe, ctx: TaskContext) -> ModelHandle:
        if not is_language_model(self.baseline):
            return self._reload(folder, recipe, ctx)
        if (folder / "model").is_dir():  # an onnxruntime-genai or encoder folder the studio wrote
            return load_model(folder / "model")
        return apply_recipe(self.baseline, recipe, default_registry(), ctx)  # PyTorch variants: rebuilt

    def _reload(self, folder: Path, recipe: Recipe, ctx: TaskContext) -> ModelHandle:
        """The published variant as the preview runs it."""
        if (folder / "model.pt").exists():  # PyTorch variants keep their run-time mode in the checkpoint
            return load_model(folder / "model.pt")
        registry = default_registry()
        if any(registry.get(step.plugin).kind == Kind.EARLY_EXIT for step in recipe.steps):
            return apply_recipe(self.baseline, recipe, registry, ctx)  # a run-time scheme: cheap to rebuild
        # An ONNX graph written by a quantizer carries no task or pre-processing of its own: it is the
        # base model's, with a new graph (the same handle the plugin returned before publishing).
        from studio.variants import onnx_variant

        summary = "+".join(step.plugin.split(".")[-1] for step in recipe.steps)
        return onnx_variant(self.baseline, folder / "model.onnx", suffix=summary, note=f"recipe {summary}")
