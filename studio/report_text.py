"""Plain-text renderings of the CLI's JSON documents (the JSON is the source of truth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studio.evaluate.evidence import interval_text, metric_label
from studio.model import describe_tensor
from studio.reports import BenchReport, ExportItem, ExportReport, VisionParity, language_score, with_kind


def info_text(summary: dict[str, Any]) -> str:
    lines = [
        f"model      {summary['name']}",
        f"format     {summary['format']}",
        f"task       {summary['task']}",
    ]
    lines += [f"input      {describe_tensor(i)}" for i in summary["inputs"]]
    lines += [f"output     {describe_tensor(o)}" for o in summary["outputs"]]
    labels = summary["labels"]
    shown = ", ".join(labels[:8]) + (f" … ({len(labels)} in all)" if len(labels) > 8 else "")
    lines += [
        f"labels     {shown or '(none)'}",
        _params_line(summary),
        f"GFLOPs     {'unknown' if summary['gflops'] is None else summary['gflops']}  ({summary['gflops_method']})",
        f"size       {summary['size_mb']} MB",
        f"sha256     {summary['provenance']['sha256']}",
        f"source     {summary['provenance']['path']}  [{summary['provenance']['loader']}]",
    ]
    if summary["provenance"]["note"]:
        lines.append(f"note       {summary['provenance']['note']}")
    for topic, topic_lines in summary.get("details", {}).items():  # the format reader's own findings
        lines += [f"{topic:<10} {line}" for line in topic_lines]
    if summary["random_weights"]:
        lines.append("WARNING    random weights: outputs are meaningless; use it for shape, export and speed only")
    return "\n".join(lines)


def _params_line(summary: dict[str, Any]) -> str:
    if summary["params"] is None:
        return "params     unknown"
    method = summary.get("params_method")
    return f"params     {summary['params']:,}" + (f"  ({method})" if method else "")


def stage_table(latency: Mapping[str, Any]) -> str:
    rows = ["stage      p50 ms   p95 ms   p99 ms"]
    for stage in ("pre", "infer", "post", "total"):
        item = latency[stage]
        rows.append(f"{stage:<8} {item['p50']:>8.2f} {item['p95']:>8.2f} {item['p99']:>8.2f}")
    return "\n".join(rows)


def runs_on_text(detail: dict[str, Any]) -> str:
    """What really ran, from a backend's ``describe()``: "onnxruntime 1.32.0 · CPUExecutionProvider · cpu (EPYC)"."""
    parts = [str(detail[key]) for key in ("runtime", "execution_provider", "delegate") if detail.get(key)]
    device = detail.get("device")
    if device:
        name = detail.get("device_name")
        parts.append(f"{device} ({name})" if name and name != device else str(device))
    return " · ".join(parts) or "unknown"


def bench_text(report: BenchReport) -> str:
    detail = report["method"].get("runtime")
    lines = [
        f"{report['model']} on {report['runtime']}, input {report['input_shape']}, {report['threads']} thread(s)",
        *([f"runs on   {runs_on_text(detail)}"] if isinstance(detail, dict) else []),
        stage_table(report["latency_ms"]),
        f"fps {report['fps']}  peak RSS {report['peak_rss_mb']} MB  model {report['model_size_mb']} MB  "
        f"params {report['params']}  GFLOPs {report['gflops']}",
        f"method: {report['method']['summary']}; {report['method']['frames']}",
        *machine_lines(report),
    ]
    if "check" in report:
        check = report["check"]
        lines.append(f"check: bare InferenceSession.run p50 {check['bare_session_run_p50_ms']} ms, "
                     f"pipeline infer / bare = {check['infer_p50_over_bare_p50']}")
    return "\n".join(lines)


def predict_text(report: dict[str, Any]) -> str:
    lines = [f"{report['model']} ({report['task']}) on {report['source']} with {report['runtime']}"]
    if report.get("runtime_detail"):
        lines.append(f"runs on {runs_on_text(report['runtime_detail'])}")
    for frame in report["frames"][:10]:
        items = ", ".join(f"{r['label']} {r['score']:.2f}" for r in frame["results"][:8]) or "nothing"
        lines.append(f"frame {frame['frame']:>3}: {items}")
    if len(report["frames"]) > 10:
        lines.append(f"… {len(report['frames']) - 10} more frame(s)")
    counts = ", ".join(f"{k} {v}" for k, v in report["counts_per_class"].items()) or "none"
    lines.append(f"per class over {len(report['frames'])} frame(s): {counts}")
    return "\n".join(lines)


def optimize_text(report: dict[str, Any]) -> str:
    base, variant, fidelity = report["baseline"], report["variant"], report["fidelity"]
    lines = [
        f"{report['model']}: {' → '.join(step['plugin'] for step in report['recipe']['steps'])}",
        "              size MB   p50 ms   p95 ms",
        f"baseline   {base['size_mb']:>9.2f} {base['latency_ms']['p50']:>8.2f} {base['latency_ms']['p95']:>8.2f}",
        f"variant    {variant['size_mb']:>9.2f} {variant['latency_ms']['p50']:>8.2f} "
        f"{variant['latency_ms']['p95']:>8.2f}",
        f"speed-up {report['speedup_p50']}×, size ×{report['size_ratio']}, fidelity {fidelity_text(fidelity)}",
    ]
    if fidelity.get("frame_set"):
        lines.append(f"judged on: {fidelity['frame_set']}")
    lines += machine_lines(report)
    lines.append(f"written: {report['output']}")
    lines += language_lines(report)
    if "accuracy" in report:
        acc = report["accuracy"]
        label, base_value = true_figure(acc["baseline"])
        lines.append(f"true {label} on {acc['baseline']['labels']}: baseline {base_value}, "
                     f"variant {true_figure(acc['variant'])[1]}")
    lines += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)


FLIPPED_CLASSES = 0.05  # class-agnostic mAP50 this far above the class-aware one is worth a word


def fidelity_text(fidelity: Mapping[str, Any]) -> str:
    """'mask mAP50 0.93 [0.88–0.97] on 40 baseline instances in 25 frames (box mAP50 0.98)': the task's metric
    by name, its interval and evidence, and the box mAP50 beside a task metric."""
    text = f"{metric_label(fidelity['metric'])} {interval_text(dict(fidelity))}"
    text += f" (box mAP50 {fidelity['box_map50']})" if "box_map50" in fidelity else ""
    any_class = fidelity.get("map50_class_agnostic")
    if any_class is not None and any_class - fidelity.get("map50", any_class) >= FLIPPED_CLASSES:
        text += f"; boxes whatever their class: mAP50 {any_class} (classes flipped more than boxes lost)"
    return text


def true_figure(result: Mapping[str, Any]) -> tuple[str, Any]:
    """(name, value) of a true-accuracy result's headline: mAP50 of boxes, or the task's own metric."""
    metric = result.get("metric", "map50")
    return ("mAP50", result["map50"]) if metric == "map50" else (metric_label(metric), result["value"])


def language_lines(report: dict[str, Any]) -> list[str]:
    """The language-model measurements of an optimize report (none for vision models)."""
    lines = []
    base, variant = report["baseline"], report["variant"]
    if "decode_tokens_per_s" in variant:
        lines.append(f"decode tokens/s: baseline {base['decode_tokens_per_s']}, "
                     f"variant {variant['decode_tokens_per_s']}; "
                     f"first token ms: {base['ttft_ms']} → {variant['ttft_ms']}")
        if variant.get("layers_used") is not None:
            lines.append(f"early exit: {variant['layers_used']} decoder layers per token on average")
    if "perplexity" in report:
        ppl = report["perplexity"]
        lines.append(f"perplexity: baseline {ppl['baseline']}, variant {ppl['variant']} ({ppl['method']})")
    if "retrieval" in report:
        ret = report["retrieval"]
        lines.append(f"retrieval: top-1 agreement {ret['top1_agreement']}, top-3 overlap {ret['top3_overlap']} "
                     f"({ret['method'].split(';')[0]})")
    if report.get("method", {}).get("latency") and "decode_tokens_per_s" in variant:
        lines.append(f"latency = {report['method']['latency']}")
    return lines


def machine_lines(report: Mapping[str, Any]) -> list[str]:
    """Where a report's figures were measured: the CPU (its INT8 path) and the model's frames."""
    lines = []
    machine = report.get("machine") or report.get("method", {}).get("machine")
    if isinstance(machine, dict):
        lines.append(f"measured on: {machine['cpu']} ({machine['logical_cores']} logical cores; "
                     f"{' '.join(machine['features'])}) — {machine['int8_path']}")
    frames = report.get("frames")
    if isinstance(frames, dict) and frames.get("judging"):
        lines.append(f"model's frames: {frames['source']} (fingerprint {frames['fingerprint']}): judging side "
                     f"{frames['judging']['frames']} frames in {frames['judging']['files']} file(s), calibration "
                     f"side {frames['calibration']['frames']} in {frames['calibration']['files']}; {frames['split']}")
    return lines


def accuracy_text(result: dict[str, Any]) -> str:
    label, value = true_figure(result)
    metric = result.get("metric", "map50")
    if metric == "map50":
        text = f"mAP50 {value}  mAP50-95 {result['map50_95']}"
        unit = "labelled boxes"
    else:
        text = (f"{label} {value}  {label.replace('mAP50', 'mAP50-95')} {result[f'{metric}_95']}  "
                f"box mAP50 {result['map50']}")
        unit = "labelled instances"
    text += (f"  precision {result['precision']}  recall {result['recall']}  ({result['targets']} {unit} in "
             f"{result['frames']} images)")
    if result.get("interval"):
        text += f"; {label} 95 % interval {result['interval']['low']}–{result['interval']['high']}"
    if result.get("evidence", {}).get("thin"):
        text += f"\nwarning: {result['evidence']['warning']}"
    return text


def evaluation_text(report: dict[str, Any]) -> str:
    lines = [f"{report['model']}" + (f" → {report['variant']}" if report.get("variant") else "")]
    for side in ("baseline", "variant"):
        if side in report.get("accuracy", {}):
            lines.append(f"true accuracy ({side}) on {report['accuracy'][side]['labels']}: "
                         + accuracy_text(report["accuracy"][side]))
    fidelity = report.get("fidelity")
    if fidelity:
        lines.append(f"fidelity {fidelity_text(fidelity)}")
        lines.append(f"judged on: {fidelity['frame_set']}")
        if fidelity["evidence"].get("warning"):
            lines.append(f"warning: {fidelity['evidence']['warning']}")
    lines += machine_lines(report)
    return "\n".join(lines)


def export_text(report: ExportReport) -> str:
    lines = [f"{report['model']} exported ({report['precision']})"]
    for item in report["exports"]:
        lines.append(f"{item['format']:<9} {item['size_mb']:>8.2f} MB  {item['export_seconds']:>6.1f} s  "
                     f"{_checked(item)}  {item['path']}")
    vision = _vision_parities(report)
    judged = next((p["frame_set"] for p in vision if p.get("frame_set")), None)
    if judged:
        lines.append(f"parity judged on: {judged}")
    thin = next((evidence["warning"] for evidence in (_evidence(p) for p in vision)
                 if evidence is not None and evidence.get("thin")), None)
    if thin:
        lines.append(f"warning: {thin}")
    lines += machine_lines(report)
    return "\n".join(lines)


def _checked(item: ExportItem) -> str:
    """What re-opening one exported file checked, in a few words."""
    if "verified" in item:  # a language model's ONNX folder
        return ", ".join(f"{k} {v}" for k, v in item["verified"].items() if k not in ("method", "runtime"))
    found = item.get("parity")
    if not found:
        return "spec validated (running it needs macOS)"
    parity = with_kind(found)
    if parity["kind"] == "vision":  # its outputs against the source's
        return f"max |Δ| {parity['max_abs_diff']:.2e}  {fidelity_text(parity['agreement'])}"
    return f"{parity['metric']} {language_score(parity)} (threshold {parity['threshold']})"


def _vision_parities(report: ExportReport) -> list[VisionParity]:
    parities = [with_kind(parity) for parity in (item.get("parity") for item in report["exports"]) if parity]
    return [parity for parity in parities if parity["kind"] == "vision"]


def _evidence(parity: VisionParity) -> Mapping[str, Any] | None:
    """A vision parity's evidence (absent from reports saved before evidence was measured)."""
    return parity["agreement"].get("evidence")


def generation_text(report: dict[str, Any]) -> str:
    rate = report["decode_tokens_per_s"]
    return "\n".join([
        report["text"],
        "",
        f"{report['model']}: {report['prompt_tokens']} prompt tokens, {report['new_token_count']} new tokens, "
        f"first token {report['ttft_ms']:.0f} ms, decode {'–' if rate is None else f'{rate:.1f}'} tokens/s, "
        f"total {report['total_ms']:.0f} ms",
        f"({report['method']})",
    ])


def embedding_text(report: dict[str, Any]) -> str:
    lines = [f"{report['model']}: {len(report['sentences'])} sentences, {report['dimensions']}-d, cosine similarity:"]
    for index, (sentence, row) in enumerate(zip(report["sentences"], report["cosine"], strict=True)):
        lines.append(f"  [{index}] " + "  ".join(f"{v:+.3f}" for v in row) + f"  {sentence[:60]}")
    return "\n".join(lines)


def search_text(summary: dict[str, Any]) -> str:
    """The trials of a search, the front marked, and how each figure was measured."""
    base = summary["baseline"]
    lines = [f"{summary['model']}: {len(summary['trials'])} trial(s) "
             f"({', '.join(f'{n} {state}' for state, n in summary['counts'].items() if n)}); target fidelity "
             f"{summary['target']}; results in {summary['out']}",
             f"the model itself: {base['latency_p50_ms'] or '—'} ms p50, {base['size_mb'] or '—'} MB",
             "  #  state     fidelity  p50 ms  speed-up  size MB  variant"]
    for row in summary["trials"]:
        fidelity = "—" if row["fidelity"] is None else f"{row['fidelity']:.3f}"
        latency = "—" if row["latency_p50_ms"] is None else f"{row['latency_p50_ms']:.1f}"
        speedup = "—" if row.get("speedup") is None else f"{row['speedup']:.2f}×"
        size = "—" if row["size_mb"] is None else f"{row['size_mb']:.1f}"
        mark = "*" if row.get("on_front") else " "
        lines.append(f"{mark}{row['number']:>3}  {row['state']:<9} {fidelity:>8}  {latency:>6}  {speedup:>8}  "
                     f"{size:>7}  {row['summary']}" + (f" — {row['error']}" if row.get("error") else ""))
    best = summary.get("best")
    lines.append(f"best at the target: trial {best['number']}, {best['summary']}" if best
                 else "no trial reached the target")
    lines += [f"note: {note}" for note in summary.get("notes", [])]
    lines += [f"{key}: {text}" for key, text in summary["method"].items()]
    lines.append("* on the front: no other variant at the target is both faster and smaller")
    return "\n".join(lines)
