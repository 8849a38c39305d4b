"""What the check found: one Finding per rule hit, grouped per graph, for one TensorRT version."""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .rules import RULES_FILE
from .versions import TrtVersion


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: str
    node: str
    op_type: str
    message: str
    remedy: str
    source: str

    def to_dict(self) -> Dict[str, str]:
        return OrderedDict(rule=self.rule_id, severity=self.severity, node=self.node, op_type=self.op_type,
                           message=self.message, remedy=self.remedy, source=self.source)


@dataclass
class GraphReport:
    name: str                       # file name (or the name given to check_model)
    findings: List[Finding] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def ok(self) -> bool:
        return self.count("error") == 0

    def rule_ids(self, severity: Optional[str] = None) -> List[str]:
        return sorted({f.rule_id for f in self.findings if severity is None or f.severity == severity})

    def summary(self) -> Dict[str, Any]:
        return OrderedDict(ok=self.ok, errors=self.count("error"), warnings=self.count("warning"),
                           infos=self.count("info"), error_rules=self.rule_ids("error"),
                           warning_rules=self.rule_ids("warning"))


@dataclass
class Report:
    version: TrtVersion
    graphs: List[GraphReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(g.ok for g in self.graphs)

    @property
    def findings(self) -> List[Finding]:
        return [f for g in self.graphs for f in g.findings]

    def count(self, severity: str) -> int:
        return sum(g.count(severity) for g in self.graphs)

    def graph(self, name: str) -> GraphReport:
        for g in self.graphs:
            if g.name == name:
                return g
        raise KeyError(name)

    def summary(self) -> Dict[str, Any]:
        """Small JSON-able dict for manifest.json."""
        return OrderedDict(
            trt_version=self.version.text, checked_as=self.version.label, ok=self.ok,
            errors=self.count("error"), warnings=self.count("warning"), infos=self.count("info"),
            graphs=OrderedDict((g.name, g.summary()) for g in self.graphs),
            rules_file=RULES_FILE.name)

    def to_dict(self) -> Dict[str, Any]:
        """Everything, findings included (for --json style output)."""
        out = self.summary()
        out["findings"] = OrderedDict((g.name, [f.to_dict() for f in g.findings]) for g in self.graphs)
        return out
