"""`infusionnet doctor`: what this machine has, and what each command can do with it."""
import argparse
import json
import sys
from typing import Dict, List, NamedTuple, Sequence, Tuple

from infusionnet.runtime.fileio import atomic_path
from infusionnet.runtime.lazy import INSTALL_HINTS, lazy_import

# The probes, imported when the doctor runs (importlib.metadata alone takes ~30 ms: not for --help).
environment = lazy_import("infusionnet.runtime.environment")

DESCRIPTION = """\
Check this installation: Python, numpy, OpenCV (with GStreamer or not: csi:N and pipeline
inputs need it), ONNX Runtime (its flavour and providers), TensorRT, pycuda, the GPU, DLA cores,
torch and the optional packages; then list what each command can do here, with the install
command for what is missing. Useful on every machine; the Jetson install script runs it last.

Exit status: 0, or 1 when the installation has a problem whatever the command (two packages
that overwrite one module, a venv that hides JetPack's packages, no numpy or OpenCV).
"""

EPILOG = """\
examples:
  infusionnet doctor
  infusionnet doctor --json doctor.json     # the same facts for a bug report
"""


class Capability(NamedTuple):
    what: str                 # a command, as the user types it
    needs: Tuple[str, ...]    # facts (environment.gather names) that must be found


# What each command needs. Facts are environment.gather's names; `gpu` is any NVIDIA GPU.
CAPABILITIES = (
    Capability("stylize/video --model EXPORT --backend onnxruntime", ("numpy", "opencv", "onnxruntime")),
    Capability("stylize/video --model ENGINES --backend tensorrt", ("numpy", "opencv", "tensorrt", "gpu", "pycuda")),
    Capability("stylize --checkpoint (PyTorch)", ("numpy", "opencv", "torch", "safetensors")),
    Capability("video --input csi:N or a GStreamer pipeline", ("opencv_gstreamer",)),
    Capability("export onnx", ("torch", "safetensors", "onnx", "onnxslim", "onnxruntime")),
    Capability("export trt (on the machine that runs the engine)", ("onnx", "tensorrt", "gpu", "pycuda")),
    Capability("check (against PyTorch)", ("torch", "safetensors", "onnxruntime", "samples")),
    Capability("bench", ("torch", "safetensors", "onnxruntime", "samples")),
    Capability("bench plots", ("matplotlib",)),
    Capability("built-in samples (sample:NAME, stylize without --content)", ("samples",)),
    Capability("train", ("torch", "safetensors")),
)

# How to get what a fact names, for facts that are not a package of INSTALL_HINTS.
FACT_HINTS = {
    "numpy": "pip install numpy",
    "opencv": "pip install opencv-python-headless (on a Jetson: JetPack's python3-opencv, in a venv made with "
              "--system-site-packages)",
    "opencv_gstreamer": "this OpenCV has no GStreamer (PyPI's wheels never do): on a Jetson use JetPack's OpenCV "
                        "(scripts/install-jetson.sh); elsewhere build OpenCV with -DWITH_GSTREAMER=ON",
    "gpu": "needs an NVIDIA GPU and its driver",
}
# Facts probed under another name than the package that provides them.
FACT_PACKAGES = {"samples": "skimage"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check this installation and say what each command can do here",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE",
                        help="also write the facts and capabilities as JSON ('-': only the JSON, on stdout)")
    parser.add_argument("--no-torch", action="store_true", help="do not import torch (it takes a few seconds)")
    parser.set_defaults(func=run)


def available(facts) -> Dict[str, bool]:
    """{fact: usable}, with OpenCV's GStreamer as a fact of its own."""
    found = {name: probe.found for name, probe in facts.items()}
    found["opencv_gstreamer"] = bool(facts["opencv"].found and facts["opencv"].details.get("gstreamer"))
    return found


def hint(fact: str) -> str:
    package = FACT_PACKAGES.get(fact, fact)
    return FACT_HINTS.get(fact) or INSTALL_HINTS.get(package) or f"install {package}"


def capabilities(found: Dict[str, bool], table: Sequence[Capability] = CAPABILITIES) -> List[Dict[str, object]]:
    """Each capability with ``ok`` and, when not, what is missing and how to get it."""
    rows = []
    for capability in table:
        missing = [fact for fact in capability.needs if not found.get(fact)]
        rows.append({"what": capability.what, "ok": not missing, "missing": missing,
                     "how": "; ".join(f"{fact}: {hint(fact)}" for fact in missing)})
    return rows


def problems(facts, found: Dict[str, bool]) -> List[str]:
    listed = environment.conflicts(facts)
    for base in ("numpy", "opencv"):
        if not found[base]:
            listed.append(f"{base} is missing and every command needs it: {hint(base)}")
    if not facts["python"].found:
        listed.append(f"Python {facts['python'].details['version']} is too old: the runtime needs 3.8 or newer")
    return listed


def run(args) -> int:
    facts = environment.gather(with_torch=not args.no_torch)
    found = available(facts)
    rows = capabilities(found)
    listed = problems(facts, found)

    if args.json == "-":  # machine-readable only
        print(json.dumps(report_dict(facts, rows, listed), indent=2, default=str))
        return 1 if listed else 0
    width = max(len(name) for name in facts) + 2
    print("this machine")
    for name, probe in facts.items():
        print(f"  {name:<{width}}{probe.summary}")
    print("\nwhat each command can do here")
    what_width = max(len(row["what"]) for row in rows) + 2
    for row in rows:
        print(f"  {row['what']:<{what_width}}{'yes' if row['ok'] else 'no: ' + row['how']}")
    print("\nproblems" if listed else "\nno problems found")
    for problem in listed:
        print(f"  - {problem}")
    if args.json:
        with atomic_path(args.json) as path:
            path.write_text(json.dumps(report_dict(facts, rows, listed), indent=2, default=str) + "\n")
        print(f"facts written to {args.json}", file=sys.stderr)
    return 1 if listed else 0


def report_dict(facts, rows, listed) -> dict:
    return {"facts": {name: {"found": p.found, "summary": p.summary, "details": p.details} for name, p in facts.items()},
            "capabilities": rows, "problems": listed}
