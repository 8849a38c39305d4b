"""The rules table, ``trt_rules.json`` beside this module: loaded once, validated when loaded.

For each TensorRT version it holds the operators the ONNX parser supports; each rule names the
``check`` (a predicate registered in ``registry.CHECKS`` by ``checks.py``, which the package
imports before anything can load the table), its severity per version range and its sources.
"""
import json
from pathlib import Path
from typing import Dict, Optional, Union

from .errors import TrtCheckError
from .registry import CHECKS

RULES_FILE = Path(__file__).with_name("trt_rules.json")
SEVERITIES = ("error", "warning", "info")

_RULES_CACHE: Dict[str, dict] = {}


def load_rules(path: Optional[Union[str, Path]] = None) -> dict:
    """The parsed rules table (cached). Raises TrtCheckError naming the file if it is broken."""
    path = Path(path) if path else RULES_FILE
    key = str(path)
    if key not in _RULES_CACHE:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise TrtCheckError(f"{path}: cannot read the TensorRT rules table ({error})") from None
        _validate_rules(data, path)
        _RULES_CACHE[key] = data
    return _RULES_CACHE[key]


def _validate_rules(data: dict, path: Path) -> None:
    # A typo in the table should fail loudly at load time, not silently skip a rule.
    problems = []
    for profile, info in data.get("versions", {}).items():
        if not info.get("ops"):
            problems.append(f"version {profile} has no operator list")
    for rule in data.get("rules", []):
        rid = rule.get("id", "?")
        if rule.get("check") not in CHECKS:
            problems.append(f"rule {rid}: unknown check '{rule.get('check')}'")
        if not rule.get("sources"):
            problems.append(f"rule {rid}: no sources")
        for level in rule.get("levels", []):
            if level.get("severity") not in SEVERITIES:
                problems.append(f"rule {rid}: bad severity {level.get('severity')!r}")
        if not rule.get("levels"):
            problems.append(f"rule {rid}: no levels")
    if problems:
        raise TrtCheckError(f"{path}: invalid rules table: " + "; ".join(problems))
