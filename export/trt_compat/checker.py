"""Running the rules: every rule whose level applies to the version, on every graph."""
import re
from pathlib import Path
from typing import Any, Dict, Optional, Union

import onnx

from . import checks  # noqa: F401 - registers the predicates in registry.CHECKS
from .graph_view import GraphView
from .onnx_files import graph_files, load_onnx
from .registry import CHECKS
from .report import Finding, GraphReport, Report
from .rules import SEVERITIES, load_rules
from .versions import TrtVersion, parse_trt_version, version_tuple

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(template: str, fields: Dict[str, Any]) -> str:
    """Substitute {name} placeholders; other braces (e.g. a Python dict in a remedy) stay as written."""
    return _PLACEHOLDER.sub(lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), template)


def level_for(rule: dict, version: TrtVersion) -> Optional[dict]:
    """The first level of ``rule`` whose [min, max] range holds ``version`` (None: rule silent)."""
    for level in rule["levels"]:
        low, high = level.get("min"), level.get("max")
        if low is not None and version.key < version_tuple(low):
            continue
        if high is not None and version.key > version_tuple(high):
            continue
        return level
    return None


def check_model(model: onnx.ModelProto, trt_version: Union[str, TrtVersion], name: str = "model") -> GraphReport:
    """Run every rule on one in-memory model."""
    version = trt_version if isinstance(trt_version, TrtVersion) else parse_trt_version(trt_version)
    view = GraphView(model, version)
    report = GraphReport(name)
    for rule in load_rules()["rules"]:
        level = level_for(rule, version)
        if level is None:
            continue
        template = level.get("message") or rule.get("message", "")
        for hit in CHECKS[rule["check"]](view, rule.get("params", {}), level):
            fields = dict(hit.fields, version=version.label)
            report.findings.append(Finding(
                rule_id=rule["id"], severity=level["severity"], node=hit.node, op_type=hit.op_type,
                message=_fill(template, fields), remedy=_fill(rule.get("remedy", ""), fields),
                source=" ; ".join(rule["sources"])))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    report.findings.sort(key=lambda f: (order[f.severity], f.rule_id, f.node))
    return report


def check_trt_compat(path_or_dir: Union[str, Path], trt_version: Union[str, TrtVersion]) -> Report:
    """Check an .onnx file, or an export directory (manifest.json's graphs, else every *.onnx)."""
    version = trt_version if isinstance(trt_version, TrtVersion) else parse_trt_version(trt_version)
    report = Report(version)
    for file in graph_files(path_or_dir):
        report.graphs.append(check_model(load_onnx(file), version, name=file.name))
    return report
