"""The accuracy comparator (runtime.compare): floors applied, rows per graph, the report and its
printer, and the one comparator behind both export verification and `infusionnet check`."""
import io
import json

import numpy as np
import pytest
from rich.console import Console

from infusionnet.runtime.backend import Backend
from infusionnet.runtime.compare import Case, Comparator, Report, Row, print_report
from infusionnet.runtime.errors import CheckError
from infusionnet.runtime.floors import FLOORS, Floors
from infusionnet.runtime.manifest import TensorSpec

SIZE = (32, 40)
IMAGE = ["content", [1, 3, "height", "width"]]
STYLE_SPEC = TensorSpec("style", [1, 3, 32, 32])
KERNEL_SPEC = TensorSpec("k", [1, 3])


class Toy(Backend):
    """A torch-free stand-in for a graph: stylized = tanh(content) + kernels, kernels = the style's
    channel means; ``noise`` and ``kernel_error`` make a candidate that is off by that much."""

    kind = "toy"

    def __init__(self, role, noise=0.0, kernel_error=0.0):
        inputs = {"full": [TensorSpec(*IMAGE), STYLE_SPEC], "style": [STYLE_SPEC],
                  "content": [TensorSpec(*IMAGE), KERNEL_SPEC]}[role]
        outputs = [KERNEL_SPEC] if role == "style" else [TensorSpec("stylized", IMAGE[1])]
        super().__init__(role, inputs, outputs)
        self.noise, self.kernel_error = noise, kernel_error

    @property
    def description(self):
        return f"toy {self.noise:g}"

    def _run(self, arrays, to_host):
        values = dict(self.held, **arrays)
        if self.role in ("full", "style"):
            kernels = values["style"].mean(axis=(2, 3)) + np.float32(self.kernel_error)
            if self.role == "style":
                return {"k": kernels}
        else:
            kernels = values["k"]
        content = values["content"]
        noise = self.noise * np.sin(np.arange(content.size, dtype=np.float32) * 0.7).reshape(content.shape)
        return {"stylized": (np.tanh(content) + kernels[:, :, None, None] + noise).astype(np.float32)}


def _graphs(kind, **errors):
    roles = ("style", "content") if kind == "split" else (kind,)
    return {role: Toy(role, **errors).open() for role in roles}


def _cases(count=2):
    rng = np.random.default_rng(0)
    return [Case("random", SIZE, {"content": rng.uniform(-2, 2, (1, 3) + SIZE).astype(np.float32),
                                  "style": rng.uniform(-2, 2, (1, 3, 32, 32)).astype(np.float32)})
            for _ in range(count)]


@pytest.mark.parametrize("floors, missed", [
    (Floors(max_abs=1e-3), "max abs"),
    (Floors(min_psnr_db=60.0), "PSNR"),
    (Floors(min_ssim=0.9999), "SSIM"),
], ids=["max-abs", "psnr", "ssim"])
def test_each_floor_is_applied(floors, missed):
    candidate = _graphs("full", noise=0.05)
    report = Comparator("fp16", floors).run(candidate, _graphs("full"), _cases())
    assert not report.passed and len(report.failures()) == 2
    assert all(len(row.failures) == 1 and row.failures[0].startswith(missed) for row in report.rows)
    # The same outputs pass floors they meet, and an exact candidate passes the strict ones.
    assert Comparator("fp16", Floors(max_abs=1.0, min_psnr_db=10.0, min_ssim=0.5)).run(
        candidate, _graphs("full"), _cases()).passed
    assert Comparator("fp16", floors).run(_graphs("full"), _graphs("full"), _cases()).passed


def test_default_floors_come_from_the_table():
    comparator = Comparator("fp32")
    assert comparator.floors == FLOORS["fp32"] and comparator.ssim  # the table's FP32 floors include SSIM
    report = comparator.run(_graphs("full", noise=0.01), _graphs("full"), _cases(1))
    assert report.rows[0].failures[0] == f"max abs {report.rows[0].max_abs:.3g} > 0.001"
    with pytest.raises(CheckError, match="SSIM floor needs SSIM"):
        Comparator("fp32", ssim=False)


def test_split_rows_kernels_inform_unless_judged_and_per_graph_isolates_the_style_graph():
    # The style graph is off, the content graph is exact.
    candidate, reference = _graphs("split", kernel_error=0.01), _graphs("split")
    check = Comparator("fp16", Floors(max_abs=1e-3)).run(candidate, reference, _cases(1))
    assert [(r.graphs, r.output) for r in check.rows] == [("style -> content", "stylized"), ("style", "kernels")]
    stylized, kernels = check.rows
    assert not stylized.passed and kernels.passed and not kernels.judged  # kernels only inform
    verification = Comparator("fp16", Floors(max_abs=1e-3), per_graph=True, judge_kernels=True).run(
        candidate, reference, _cases(1))
    assert [r.graphs for r in verification.rows] == ["style", "content", "style -> content"]
    style, content, chained = verification.rows
    assert not style.passed and style.limit == "max abs <= 0.001"  # judged now
    assert content.passed and content.max_abs == 0.0  # the content graph on the reference's kernels
    assert chained.max_abs == pytest.approx(0.01, abs=1e-6) and verification.per_graph


def _report():
    rows = [Row("random", "32x40", "stylized", 2e-4, 1e-5, 45.0, 44.0, 0.99, graphs="style -> content",
                limit="PSNR >= 40 dB"),
            Row("random", "32x40", "kernels", 0.5, 0.1, graphs="style", limit="(via chained output)"),
            Row("samples", "32x40", "stylized", 0.2, 0.01, 100.0, 30.0, 0.5, "astronaut / brick",
                ["PSNR 30.0 dB < 40"], graphs="style -> content", limit="PSNR >= 40 dB")]
    return Report("onnxruntime CPUExecutionProvider", "torch cpu FP32", "fp16", Floors(min_psnr_db=40.0), "split",
                  rows, notes=["a note"])


def _printed(report, width=100):
    console = Console(file=io.StringIO(), width=width, highlight=False)
    print_report(report, console)
    return console.file.getvalue()


def _table(text):
    """(title, header words, row words) of a printed report."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] in (["inputs"], ["graphs"]))
    rows = [line.split() for line in lines[header + 2:]]
    return " ".join(line.strip() for line in lines[:header]).strip(), lines[header].split(), rows[:rows.index([])]


def test_printer_and_json():
    report = _report()
    text = _printed(report)
    title, header, rows = _table(text)
    assert title == "onnxruntime CPUExecutionProvider vs torch cpu FP32 (fp16; floors: PSNR >= 40 dB)"
    assert header == ["inputs", "size", "output", "max", "abs", "mean", "abs", "PSNR", "rPSNR", "SSIM"]
    assert rows[0] == ["random", "32x40", "stylized", "0.0002", "1e-05", "45.0", "44.0", "0.9900", "ok"]
    assert rows[1][-1] == "info" and rows[2][-3:] == ["30.0", "0.5000", "FAIL"] and rows[2][-4] == "exact"
    assert "samples 32x40 stylized: PSNR 30.0 dB < 40" in text and "note: a note" in text
    data = report.to_dict()
    assert list(data) == ["candidate", "reference", "precision", "graph_kind", "floors", "passed", "notes", "rows"]
    assert not data["passed"] and data["floors"] == {"max_abs": None, "min_psnr_db": 40.0, "min_ssim": None}
    assert list(data["rows"][2]) == ["inputs", "size", "output", "max_abs", "mean_abs", "psnr_db", "range_psnr_db",
                                     "ssim", "images", "failures", "passed"]
    json.dumps(data, allow_nan=False)
    assert report.worst() == {"max_abs": 0.5, "min_psnr_db": 45.0, "min_range_psnr_db": 30.0}


def test_printer_per_graph_fits_80_columns_without_unmeasured_ssim():
    report = _report()
    report.per_graph = True
    for row in report.rows:
        row.ssim = None
    text = _printed(report, width=80)
    _, header, rows = _table(text)
    assert header == ["graphs", "inputs", "size", "max", "abs", "mean", "abs", "PSNR", "rPSNR"]
    assert rows[0][0] == "style->content" and rows[0][-1] == "ok" and rows[1][-1] == "info"
    assert "…" not in text and "style -> content on samples 32x40 stylized: PSNR 30.0 dB < 40" in text


def test_export_verification_and_check_run_the_same_comparator(monkeypatch, tmp_path, capsys):
    """`export onnx`'s verification and `infusionnet check` both hand their backends to
    Comparator.run: the export's graphs in ONNX Runtime against PyTorch backends."""
    import runtime_exports
    from infusionnet.cli.main import main
    from infusionnet.export.pipeline import ExportConfig, load_model, verification_feeds
    from infusionnet.export.verify import TorchReference, verify
    from infusionnet.runtime.manifest import Manifest

    model_dir = runtime_exports.export("split", dynamic=False)  # made (and verified) before the spy starts
    calls = []
    original = Comparator.run

    def spy(self, candidate, reference, cases, log=None):
        report = original(self, candidate, reference, cases, log)
        calls.append((self, {r: b.kind for r, b in candidate.items()}, {r: b.kind for r, b in reference.items()},
                      report))
        return report

    monkeypatch.setattr(Comparator, "run", spy)
    manifest = Manifest.load(model_dir)
    config = ExportConfig(output=model_dir, graph="split", content_size=(32, 32), style_size=96)
    verified = verify({role: str(graph.path) for role, graph in manifest.graphs.items()},
                      TorchReference(load_model(config).model), verification_feeds(config), manifest.precision)
    assert main(["check", str(model_dir), "--samples", "0", "--json", str(tmp_path / "check.json")]) == 0
    capsys.readouterr()
    (export_comparator, *export_sides, export_report), (check_comparator, *check_sides, check_report) = calls
    assert export_sides == check_sides == [{"style": "onnxruntime", "content": "onnxruntime"},
                                           {"style": "torch", "content": "torch"}]
    assert export_report is verified and verified.passed and check_report.passed
    # The choices differ, the floors come from the one table.
    assert export_comparator.per_graph and not export_comparator.ssim and export_comparator.judge_kernels
    assert not check_comparator.per_graph and check_comparator.ssim and not check_comparator.judge_kernels
    assert export_comparator.floors.max_abs == check_comparator.floors.max_abs == FLOORS["fp32"].max_abs
    # check reports a subset of the graphs verification does: the chain and the style graph.
    assert {row.graphs for row in check_report.rows} <= {row.graphs for row in export_report.rows}
