"""Presentation: the findings as a rich table or plain text, and the ``export check-trt`` command."""
from typing import Dict, Tuple

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .checker import check_trt_compat
from .errors import TrtCheckError
from .report import Report

_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def format_report(report: Report, max_per_rule: int = 3):
    """A rich Table, one row per finding (severity, graph, rule, node, message, remedy, source).

    A rule that fires on many nodes (reflect pads, say) shows ``max_per_rule`` rows and a count
    of the rest, so the table stays readable; ``report.findings`` keeps every one.
    """
    title = (f"TensorRT {report.version.text} compatibility"
             + (f" (checked as {report.version.label})" if report.version.text != report.version.label else ""))
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("graph", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("node", overflow="fold")
    table.add_column("finding / remedy", overflow="fold")
    for graph in report.graphs:
        if not graph.findings:
            table.add_row("[green]ok[/]", escape(graph.name), "", "", "no findings")
        shown: Dict[Tuple[str, str], int] = {}
        for f in graph.findings:
            key = (f.rule_id, f.severity)
            shown[key] = shown.get(key, 0) + 1
            if shown[key] > max_per_rule:
                continue
            node = f"{f.node} ({f.op_type})" if f.node else (f.op_type or "(graph)")
            sources = f.source.split(" ; ")
            source = sources[0] + (f" (+{len(sources) - 1} more)" if len(sources) > 1 else "")
            # Messages hold shapes like x[1, 4, h, w]: escape them so rich does not read markup.
            text = escape(f.message) + (f"\n[dim]-> {escape(f.remedy)}[/]" if f.remedy else "") \
                + f"\n[dim]source: {escape(source)}[/]"
            table.add_row(f"[{_STYLES[f.severity]}]{f.severity}[/]", escape(graph.name), f.rule_id, escape(node), text)
        for (rule_id, severity), count in shown.items():
            if count > max_per_rule:
                table.add_row(f"[{_STYLES[severity]}]{severity}[/]", escape(graph.name), rule_id, "...",
                              f"[dim]and {count - max_per_rule} more node(s) with this finding[/]")
    return table


def report_text(report: Report) -> str:
    """Plain-text rendering (logs, tests)."""
    lines = []
    for graph in report.graphs:
        for f in graph.findings:
            where = f"{f.node} ({f.op_type})" if f.node else "(graph)"
            lines.append(f"{f.severity:7s} {graph.name} {f.rule_id} {where}: {f.message}")
    lines.append(_verdict(report))
    return "\n".join(lines)


def _verdict(report: Report) -> str:
    counts = f"{report.count('error')} error(s), {report.count('warning')} warning(s), {report.count('info')} note(s)"
    state = "compatible" if report.ok else "NOT compatible"
    return f"TensorRT {report.version.text}: {state} ({counts}) in {len(report.graphs)} graph(s)"


def main_check(args) -> int:
    """CLI body for ``infusionnet export check-trt PATH --trt VERSION``: 1 if any error, else 0.

    Reads ``args.path`` (the file or export directory) and ``args.trt``. Bad paths, non-ONNX
    files and unknown versions raise TrtCheckError (an InfusionNetError) for the CLI to print.
    """
    path = getattr(args, "path", None) or getattr(args, "target", None)
    version = getattr(args, "trt", None) or getattr(args, "trt_version", None)
    if path is None or version is None:
        raise TrtCheckError("check-trt needs a path and --trt VERSION")
    report = check_trt_compat(path, version)
    console = Console()
    console.print(format_report(report))
    console.print(_verdict(report), style="green" if report.ok else "bold red", highlight=False)
    return 0 if report.ok else 1
