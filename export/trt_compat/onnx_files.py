"""The ONNX files a path stands for (a file, an export directory's manifest, a folder), read lightly."""
import json
from pathlib import Path
from typing import Any, List, Sequence, Union

import onnx

from .errors import TrtCheckError


def load_onnx(path: Union[str, Path]) -> onnx.ModelProto:
    """Read an ONNX file without its external weights; TrtCheckError (naming the file) if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise TrtCheckError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf DecodeError, OSError, ...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TrtCheckError(f"{path}: not a readable ONNX model ({reason})") from None
    # Protobuf happily parses many non-ONNX byte strings into an empty message.
    if not model.opset_import or not model.HasField("graph") or not model.graph.node:
        raise TrtCheckError(f"{path}: not an ONNX model (no graph or opset found)")
    return model


def graph_files(path: Union[str, Path]) -> List[Path]:
    """The ONNX files ``path`` stands for: itself, the manifest's graphs, or every *.onnx in a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TrtCheckError(f"{path}: no such file or export directory")
    manifest = path / "manifest.json"
    if manifest.is_file():
        files = _manifest_files(manifest)
    else:
        files = sorted(p.name for p in path.glob("*.onnx"))
    if not files:
        raise TrtCheckError(f"{path}: no ONNX graphs found (no *.onnx files and no graphs in a manifest.json)")
    resolved = []
    for name in files:
        candidate = path / name
        if not candidate.is_file():
            raise TrtCheckError(f"{candidate}: listed in {manifest.name} but missing")
        resolved.append(candidate)
    return resolved


def _manifest_files(manifest: Path) -> List[str]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrtCheckError(f"{manifest}: unreadable manifest ({error})") from None
    graphs = data.get("graphs") if isinstance(data, dict) else None
    if graphs is None:
        return []
    # Accept a list of {"file": ...} entries, a {role: {"file": ...}} mapping, or plain file names.
    entries: Sequence[Any] = list(graphs.values()) if isinstance(graphs, dict) else list(graphs)
    files = []
    for entry in entries:
        file = entry.get("file") if isinstance(entry, dict) else entry
        if not isinstance(file, str) or not file:
            raise TrtCheckError(f"{manifest}: a graph entry has no 'file'")
        files.append(file)
    return files
