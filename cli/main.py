"""The `infusionnet` command: one front door, one subcommand per job.

Each subcommand lives in its own module of this package with ``register(subparsers)``, which
adds its parser and sets ``func``. Modules declare torch, onnx and the modules that need them with
``runtime.lazy.lazy_import``, imported when a command first uses them, so ``infusionnet --help``
stays instant and the torch-free commands work without torch.
"""
import argparse
import importlib
import signal
import sys
import threading
from contextlib import contextmanager
from typing import List, Optional

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import describe_os_error
from infusionnet.runtime.lazy import INSTALL_HINTS

# Modules that add subcommands, in the order `--help` lists them.
COMMAND_MODULES = ("stylize", "video", "bench", "check", "train", "export_cmd", "doctor")

EPILOG = """\
examples:
  infusionnet stylize --output out/                      # built-in sample images, default model
  infusionnet stylize --checkpoint main.pth --content photo.jpg --style sample:hubble_deep_field -o out/
run `infusionnet COMMAND --help` for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infusionnet", description="Deploy InfusionNet / AesFA style transfer: stylize, export to "
        "ONNX and TensorRT, check exported forms against PyTorch, benchmark.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"infusionnet.cli.{name}").register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; ``argv`` None reads sys.argv (the console script, ``python -m``)."""
    code = run_command(argv)
    if argv is None:  # this process's own command: nothing but the interpreter's exit follows
        ignore_late_signals()
    return code


def ignore_late_signals() -> None:
    """Once a command has finished and cleaned up, a Ctrl-C or SIGTERM can only cut the
    interpreter's shutdown short (ONNX Runtime and OpenCV take a second or two to unload) and turn
    a finished run's exit status into a kill (seen as exit -2 in tests/test_faults.py)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_command(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[2:] if argv is None else argv[1:])  # the subcommand's own words, for reports
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except ModuleNotFoundError as error:  # an optional package (runtime.lazy's MissingDependency, or an import)
        if error.name not in INSTALL_HINTS:
            raise
        print(f"error: `infusionnet {args.command}` needs {error.name}, which is not installed: "
              f"{INSTALL_HINTS[error.name]}", file=sys.stderr)
        return 2
    except InfusionNetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileExistsError as error:
        print(f"error: {error}" if not error.filename else f"error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a file-system problem the command did not word itself: name the path
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every command cleans up the same way."""


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (kill, systemd, docker stop) unwinds like Ctrl-C: temporary outputs are removed,
    videos finalized. The default action would end the process without running any cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
