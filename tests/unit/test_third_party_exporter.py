"""A third-party exporter, installed as a package with an entry point, is offered everywhere the table is read:
the CLI's formats and precisions, the export dialog's check boxes, the engine's refusals."""

from __future__ import annotations

import textwrap

import pytest

from studio import capabilities, registry
from studio.cli import _parser
from studio.errors import UnsupportedError
from studio.plugin_api import VISION
from tests.unit.handles import handle, language_model
from ui.export_dialog import ExportChoice, choice_fits, format_rows, formats_for, precisions_for

PLUGIN = '''
from dataclasses import dataclass
from typing import Literal

from studio.plugin_api import VISION, Exports, Kind, option


@dataclass
class AcmeSettings:
    precision: Literal["fp32", "fp16", "bf16"] = option("fp32", label="Precision")
    threads: int = option(4, label="Threads", min=1, max=64)


class AcmeExport:
    id = "acme.ncnn"
    title = "NCNN (Acme)"
    kind = Kind.EXPORT
    Settings = AcmeSettings
    settings_version = 1
    format = "ncnn"
    suffix = "_ncnn"
    exports = (Exports(VISION, ("fp32", "fp16", "bf16"), native=("fp32", "fp16", "bf16")),)

    def check(self, model):
        return []

    def apply(self, model, settings, ctx):
        return model

    def export(self, model, settings, target, ctx):
        target.mkdir()
        return {"runtime": "none"}
'''


@pytest.fixture
def acme_installed(tmp_path, monkeypatch):
    """A package on sys.path as pip would leave it (module + dist-info with its entry point), and a registry
    loaded afresh from every installed entry point, as a new process would."""
    (tmp_path / "acme_ncnn_export.py").write_text(PLUGIN)
    info = tmp_path / "acme_ncnn-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ncnn\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{registry.GROUP}]
        acme.ncnn = acme_ncnn_export:AcmeExport
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_DEFAULT", None)
    loaded = registry.default_registry()
    assert "acme.ncnn" in loaded.plugins and not [p for p in loaded.problems if "acme" in p]
    return loaded


def test_the_cli_offers_its_format_and_precision(acme_installed, capsys):
    parser = _parser()
    args = parser.parse_args(["export", "net.onnx", "--to", "onnx,ncnn", "--precision", "bf16", "-o", "out"])
    assert args.to == ["onnx", "ncnn"] and args.precision == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "coreml, ncnn, onnx, openvino, tflite" in shown and "fp32, bf16, fp16, int8, int4" in shown


def test_the_dialog_offers_it_for_vision_models_only(acme_installed):
    assert ("ncnn", "NCNN (Acme)") in format_rows()
    assert "bf16" in precisions_for(handle())
    assert "ncnn" not in formats_for(handle(), "fp16")
    assert choice_fits(ExportChoice(["ncnn"], "bf16"), handle())
    assert "ncnn" in formats_for(language_model(), "fp32")  # it declares no language row
    # ONNX writes no bf16: the dialog disables it with the engine's reason
    assert formats_for(handle(), "bf16")["onnx"].startswith("BF16 vision models are exported to NCNN (Acme) only")


def test_the_engine_reads_the_same_table(acme_installed):
    (ncnn,) = capabilities.exporters_for(["ncnn"])
    assert capabilities.suffix(ncnn, VISION) == "_ncnn"
    assert capabilities.refusal(ncnn, VISION, "bf16") is None
    with pytest.raises(UnsupportedError, match="no installed quantizer makes BF16 vision models"):
        capabilities.precision_steps(handle(), "bf16")  # what only a converter makes needs its own converter
