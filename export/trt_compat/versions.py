"""TensorRT versions: what ``--trt`` accepts, and what the rules table says each version supports."""
from dataclasses import dataclass
from typing import List, Set, Tuple, Union

from .errors import TrtCheckError
from .rules import load_rules


@dataclass(frozen=True)
class TrtVersion:
    """A requested TensorRT version resolved to the rules profile that describes it."""
    text: str                   # as the user wrote it, e.g. "10"
    key: Tuple[int, int]        # (major, minor) used for rule ranges, e.g. (10, 0)
    profile: str                # key into the rules file's "versions", e.g. "10.0"

    @property
    def label(self) -> str:
        return f"{self.key[0]}.{self.key[1]}"


def version_tuple(text: str) -> Tuple[int, int]:
    """A version as the rules table writes it, as a (major, minor) key: "8.5" -> (8, 5), "10" -> (10, 0)."""
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def known_versions() -> List[str]:
    """Versions accepted by ``--trt``, in order (10.x minors resolve to the 10.0 list plus additions)."""
    rules = load_rules()
    out = []
    for profile in rules["versions"]:
        if profile == "10.0":
            out.append("10")
            out.extend(f"10.{minor}" for minor in range(0, _max_10_minor(rules) + 1))
        else:
            out.append(profile)
    return out


def _max_10_minor(rules: dict) -> int:
    additions = rules["versions"]["10.0"].get("later_additions", {})
    return max([0] + [version_tuple(v)[1] for v in additions])


def parse_trt_version(text: Union[str, float, int]) -> TrtVersion:
    """Accept "8.2", "8.5.3", "8.6", "10", "10.3", "10.3.0.26"; anything else is a TrtCheckError."""
    raw = str(text).strip()
    rules = load_rules()
    parts = raw.split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if numbers and numbers[0] == 10:
        minor = numbers[1] if len(numbers) > 1 else 0
        if 0 <= minor <= _max_10_minor(rules):
            return TrtVersion(raw, (10, minor), "10.0")
    elif len(numbers) >= 2:
        profile = f"{numbers[0]}.{numbers[1]}"
        if profile in rules["versions"]:
            return TrtVersion(raw, (numbers[0], numbers[1]), profile)
    known = ", ".join(p if p != "10.0" else f"10 (10.0-10.{_max_10_minor(rules)})" for p in rules["versions"])
    raise TrtCheckError(f"unknown TensorRT version '{raw}'; known versions: {known}")


def supported_ops(version: TrtVersion) -> Set[str]:
    """Default-domain operators the parser of ``version`` imports (from the rules file)."""
    info = load_rules()["versions"][version.profile]
    ops = set(info["ops"])
    for added_in, names in info.get("later_additions", {}).items():
        if version_tuple(added_in) <= version.key:
            ops.update(names)
    return ops


def opset_range(version: TrtVersion) -> Tuple[int, int]:
    info = load_rules()["versions"][version.profile]
    high = info["opset_max"]
    for minor, value in info.get("opset_max_by_minor", {}).items():
        if version_tuple(minor) <= version.key:
            high = value
    return info.get("opset_min", 1), high
