"""The runtime backends as command-line options: one spelling for stylize, video and check.

``--backend`` chooses what runs an export or engine directory; each backend's own knobs (here
OpenVINO's compute precision) are named once and turned into the backend's options once.
``load_backend`` makes the chosen backend available to the runtime: the command line is the top
layer, where the torch-free runtime and the PyTorch backend beside the networks are put together.
"""
from infusionnet.runtime.backend import BACKENDS
from infusionnet.runtime.lazy import lazy_import, load
from infusionnet.runtime.openvino_backend import OV_PRECISIONS

# Registers the "torch" backend with the runtime when loaded; needs torch, so only on request.
torch_backend = lazy_import("infusionnet.models.torch_backend")

OV_PRECISION_HELP = ("--backend openvino: compute precision: default (OpenVINO's choice: BF16 on CPUs with "
                     "AMX or AVX-512 BF16, else FP32), fp32, bf16 (default: %(default)s)")


def add_backend_argument(parser, default=None, help_text: str = "what runs --model") -> None:
    """``--backend`` with every runtime backend, and the OpenVINO precision beside it."""
    parser.add_argument("--backend", choices=BACKENDS, default=default,
                        help=help_text + (" (default: %(default)s)" if default else ""))
    parser.add_argument("--ov-precision", choices=OV_PRECISIONS, default="default", help=OV_PRECISION_HELP)


def backend_options(args, backend: str) -> dict:
    """Options for ``make_backends``/``Stylizer`` from the parsed arguments of one command."""
    if backend == "torch":
        return {"device": args.device}
    if backend == "openvino":
        return {"precision": args.ov_precision}
    return {}


def load_backend(backend: str) -> None:
    """Make ``backend`` buildable by the runtime's ``Stylizer``/``make_backends``. The runtime
    builds its own backends; the PyTorch one lives with the networks and registers itself when
    imported, which needs torch: so it is imported only when asked for."""
    if backend == "torch":
        load(torch_backend)
