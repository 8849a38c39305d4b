"""Each shared fact has one home: a second definition anywhere else in the project fails here.

The sources are parsed (ast), not grepped: an import of a fact is fine, an assignment, a class
or function of the same name, or a literal copy of its value (as a tuple of names, a dict, a
message) outside its home is not.
"""
import ast
from pathlib import Path

import pytest

from infusionnet.runtime import backend, manifest, model_choice, sizes

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "export", "models", "benchmarks", "cli", "scripts")

MANIFEST, SIZES, MODEL_CHOICE = "runtime/manifest.py", "runtime/sizes.py", "runtime/model_choice.py"
# Name -> the one file that may define it.
HOMES = {
    "ROLES": MANIFEST, "GRAPH_KINDS": MANIFEST, "FRAME_ROLES": MANIFEST, "PRECISIONS": MANIFEST,
    "CONTENT": MANIFEST, "STYLE": MANIFEST, "STYLIZED": MANIFEST, "TensorSpec": MANIFEST,
    "BACKENDS": "runtime/backend.py",
    "CalibrationReader": "runtime/calibration.py", "get_next": "runtime/calibration.py",
    "rewind": "runtime/calibration.py",
    "SIZE_MULTIPLE": SIZES, "MIN_SIZE": SIZES, "CONTENT_SIZE_MULTIPLE": SIZES, "MIN_CONTENT_SIZE": SIZES,
    "NAMED_SIZES": SIZES, "Size": SIZES, "parse_size": SIZES, "parse_sizes": SIZES, "parse_hw": SIZES,
    "parse_content_size": SIZES, "parse_content_sizes": SIZES, "parse_frame_size": SIZES, "even_size": SIZES,
    "check_hw": SIZES,
    "VARIANT_NAMES": MODEL_CHOICE, "UNTRAINED": MODEL_CHOICE, "UNTRAINED_SHA_PREFIX": MODEL_CHOICE,
    "CHECKPOINT_HELP": MODEL_CHOICE,
    "torch_device": "models/device.py",
    "INSTALL_HINTS": "runtime/lazy.py",
}
# Values whose literal copies are second homes (compared as sets of names: order does not hide one).
VALUES = {
    frozenset(manifest.ROLES): MANIFEST, frozenset(manifest.GRAPH_KINDS): MANIFEST,
    frozenset(manifest.PRECISIONS): MANIFEST, frozenset(backend.BACKENDS): "runtime/backend.py",
    frozenset(model_choice.VARIANT_NAMES): MODEL_CHOICE,
}
DICTS = [(manifest.GRAPH_KINDS, MANIFEST), (manifest.FRAME_ROLES, MANIFEST), (sizes.NAMED_SIZES, SIZES)]
# Words of a message or format written in one place only.
PHRASES = {"sees no CUDA GPU": "models/device.py", model_choice.UNTRAINED_SHA_PREFIX: MODEL_CHOICE,
           "pip install torch==": "runtime/lazy.py"}


def sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path))


def docstrings(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def defined_names(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name, node
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for item in ast.walk(target):
                if isinstance(item, ast.Name):
                    yield item.id, node


def literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def second_homes(file, tree):
    skip = docstrings(tree)
    for node in ast.walk(tree):
        for name, where in defined_names(node):
            if name in HOMES and HOMES[name] != file:
                yield f"{file}:{where.lineno} defines {name} (its home is {HOMES[name]})"
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts:
            value = literal(node)
            if value and all(isinstance(v, str) for v in value) and VALUES.get(frozenset(value), file) != file:
                yield f"{file}:{node.lineno} spells out {tuple(value)} (its home is {VALUES[frozenset(value)]})"
        if isinstance(node, ast.Dict):
            value = literal(node)
            for fact, home in DICTS:
                if value == fact and home != file:
                    yield f"{file}:{node.lineno} spells out {value} (its home is {home})"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for phrase, home in PHRASES.items():
                if phrase in node.value and home != file:
                    yield f"{file}:{node.lineno} writes {phrase!r} (its home is {home})"
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "parse_resize":
            if node.args and isinstance(node.args[0], ast.JoinedStr):
                yield (f"{file}:{node.lineno} builds a resize spec as text only to parse it back: "
                       "use images.Resize.square/exact/short")


def test_every_shared_fact_has_one_home():
    problems = [problem for file, tree in sources() for problem in second_homes(file, tree)]
    assert problems == []


def test_the_scan_finds_a_second_home():
    code = '''
"""Mentions untrained-seed-0 in a docstring, which is fine."""
PRECISIONS = ("fp32", "fp16", "int8")
ORDER = ["int8", "fp16", "fp32"]
def parse_hw(text): ...
KINDS = {"split": ("style", "content"), "full": ("full",), "baked": ("baked",)}
MESSAGE = "PyTorch sees no CUDA GPU"
spec = images.parse_resize(f"square:{size}")
'''
    problems = list(second_homes("export/somewhere.py", ast.parse(code)))
    assert len(problems) == 7, problems
    assert all(problem.startswith("export/somewhere.py:") for problem in problems)
    assert list(second_homes(MANIFEST, ast.parse('PRECISIONS = ("fp32", "fp16", "int8")'))) == []


def test_the_variant_names_match_the_networks():
    networks = pytest.importorskip("infusionnet.models.networks", reason="needs torch")
    assert tuple(networks.VARIANTS) == model_choice.VARIANT_NAMES


def test_one_tensor_spec_everywhere():
    from infusionnet.runtime import engine_sidecar, trt_plan

    assert trt_plan.TensorSpec is engine_sidecar.TensorSpec is manifest.TensorSpec
    spec = manifest.TensorSpec("content", [1, 3, "height", 64])
    assert spec.shape == (1, 3, "height", 64) and spec == manifest.TensorSpec.from_dict(spec.to_dict())
    assert spec.to_dict()["shape"] == [1, 3, "height", 64] and hash(spec) == hash(manifest.TensorSpec(**vars(spec)))
