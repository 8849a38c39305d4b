"""FP32 graphs exported once per test session and shared by the tests/test_export_*.py modules.

Exporting is the slow part of the export tests (seconds per graph on 2 cores), so structure,
accuracy and precision tests all read the same files. Never modify them in place: precision
tests write their FP16/INT8 versions into their own tmp_path.
"""
import atexit
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import onnx
import pytest
import torch

from infusionnet.export import calibration as calib
from infusionnet.export.pipeline import ExportConfig, bake_kernels, export_fp32

CONTENT_SIZE = (32, 48)
STYLE_SIZE = {"infusionnet": 96, "aesfa": 32}
_CACHE = {}
_ROOT = []


class Exported:
    """One case (kind, variant, batch, dynamic): its config, model, baked kernels, files, protos."""

    def __init__(self, case, directory: Path, models):
        self.kind, self.variant, self.batch, self.dynamic = case
        self.model = models[self.variant]
        self.config = ExportConfig(output=directory, graph=self.kind, batch=self.batch, content_size=CONTENT_SIZE,
                                   style_size=STYLE_SIZE[self.variant], dynamic_size=self.dynamic,
                                   style_image="sample:brick" if self.kind == "baked" else None)
        self.baked = None
        if self.kind == "baked":
            style = calib.random_pairs(1, CONTENT_SIZE, STYLE_SIZE[self.variant], 1, seed=5)[0]["style"]
            self.baked = bake_kernels(self.model, style)
        self.paths = export_fp32(self.model, self.config, directory, self.baked)
        self.models = {role: onnx.load(str(path)) for role, path in self.paths.items()}


def exported(case, models) -> Exported:
    """The FP32 export of ``case``, made on first use. ``models``: variant -> seeded model."""
    case = tuple(case)
    if case not in _CACHE:
        if not _ROOT:
            _ROOT.append(Path(tempfile.mkdtemp(prefix="infusionnet-export-tests-")))
            atexit.register(shutil.rmtree, str(_ROOT[0]), True)
        directory = _ROOT[0] / "-".join(map(str, case))
        directory.mkdir()
        _CACHE[case] = Exported(case, directory, models)
    return _CACHE[case]


@contextmanager
def small_tensor_mode():
    """Run PyTorch convolutions without oneDNN. At the tests' tiny sizes oneDNN spends more time
    creating a primitive for every new shape than computing (measured ~2.5x slower over six
    shapes at 32 px; at 256 px it is the other way round, so only tests do this)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "TF32 acceleration on top of oneDNN ..." notice
        with torch.backends.mkldnn.flags(enabled=False):
            yield


# Fixtures for the export test modules, which import them by name (pytest then uses them there).
@pytest.fixture(scope="module", autouse=True, name="_small_tensors")
def small_tensors_for_module():
    """Every test of the importing module runs in ``small_tensor_mode``."""
    with small_tensor_mode():
        yield


@pytest.fixture(scope="module", name="exported")
def exported_by_case(seeded_models):
    """``exported(case)``: the shared FP32 export of ``case`` with the session's seeded models."""
    return lambda case: exported(case, seeded_models)
