"""The registry of checks: the rules table's ``check`` names -> the predicates that implement them.

Each predicate takes the graph view, the rule's params and the level that applies to the
version, and yields hits (node, op, fields for the message template).
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable

from .graph_view import GraphView


@dataclass
class Hit:
    node: str
    op_type: str
    fields: Dict[str, Any] = field(default_factory=dict)


Check = Callable[[GraphView, dict, dict], Iterable[Hit]]
CHECKS: Dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(func: Check) -> Check:
        CHECKS[name] = func
        return func
    return register
