"""ONNX export: opset choice, onnxslim, optional dynamic batch, metadata; re-opened in onnxruntime.

A language model becomes a folder instead (``studio.lm.export``: onnxruntime-genai's decoder with its KV
cache, or an encoder with its pooling manifest), verified against the PyTorch model; the settings above
are for vision graphs (the genai builder picks its own opset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plugins.export.common import VISION_PRECISIONS, Exporter, source_graph, verification_size
from studio.artifact_metadata import artifact_metadata
from studio.lm.variants import is_language_model
from studio.model import ModelHandle
from studio.plugin_api import LANGUAGE, VISION, Exports, option
from studio.tasks import TaskContext


@dataclass
class OnnxExportSettings:
    opset: int = option(18, label="Opset", min=13, max=22, help="Older runtimes need an older opset")
    simplify: bool = option(True, label="Simplify with onnxslim")
    dynamic_batch: bool = option(False, label="Dynamic batch size")


class OnnxExport(Exporter):
    id = "export.onnx"
    title = "ONNX"
    format = "onnx"
    suffix = ".onnx"
    # Every precision but FP32 comes from a quantizer step before the export (the engine asks the registry
    # for one): FP16/INT8 graphs for vision models, INT8/INT4 MatMulNBits weights for language models,
    # whose export is an onnxruntime-genai (or encoder) folder.
    exports = (Exports(VISION, VISION_PRECISIONS), Exports(LANGUAGE, ("fp32", "int8", "int4"), suffix="-onnx"))
    Settings = OnnxExportSettings

    def export(self, model: ModelHandle, settings: OnnxExportSettings, target: Path, ctx: TaskContext,
               reference: ModelHandle | None = None) -> dict:
        """``reference``: the float model the export is checked against (the engine passes it; None: ``model``)."""
        if is_language_model(model):
            from studio.lm.export import export_onnx_folder, onnx_ready

            return export_onnx_folder(onnx_ready(model, ctx), reference or model, target, ctx)
        import onnx
        from onnx import version_converter

        ctx.progress(0.1, "preparing the graph")
        source = source_graph(model)
        graph = onnx.load(str(source))
        current = max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
        if settings.opset != current:
            graph = version_converter.convert_version(graph, settings.opset)
        if settings.dynamic_batch:
            for value in [*graph.graph.input, *graph.graph.output]:
                dims = value.type.tensor_type.shape.dim
                if dims:
                    dims[0].dim_param = "batch"
        if settings.simplify:
            import onnxslim

            graph = onnxslim.slim(graph)
        existing = {p.key: p for p in graph.metadata_props}
        for key, value in artifact_metadata(model).items():
            (existing[key] if key in existing else graph.metadata_props.add()).key = key
            (existing[key] if key in existing else graph.metadata_props[-1]).value = value
        onnx.checker.check_model(graph)
        onnx.save(graph, str(target))
        ctx.progress(0.6, "verifying in onnxruntime")
        from studio.runtime.backends import OrtBackend
        from studio.verify import parity

        # An FP16/INT8 variant is checked against the FP32 graph it came from, not against itself.
        expected = OrtBackend(source_graph(reference) if reference is not None else source, threads=2)
        exported = OrtBackend(target, threads=2)
        check = parity(model, expected.run, exported.run, verification_size(model), ctx=ctx.sub(0.6, 1.0))
        return {"runtime": "onnxruntime", "opset": settings.opset, "parity": check,
                "ops": len(graph.graph.node)}
