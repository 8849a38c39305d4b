"""Will this ONNX graph parse and build in TensorRT X? A static check, torch-free (numpy + onnx).

Jetson users cannot try a build before copying a file to the board, and machines here have no
TensorRT at all, so the answer comes from a rules table: ``trt_rules.json`` beside these modules
holds, for each TensorRT version, the operators its ONNX parser supports and the restrictions
it imposes (dynamic-weight convolutions before 8.5, initializer-only normalization parameters,
symmetric INT8 Q/DQ, ...), each rule with the documents that confirm it. The Python side is a
set of small predicates, one per rule ``check`` name, run over the graph after ONNX shape
inference so that computed tensors and initializers can be told apart.

Public API (used by the export pipeline and ``infusionnet export check-trt``), importable from
here:
  check_trt_compat(path_or_dir, trt_version) -> Report
  check_model(model, trt_version, name) -> GraphReport
  format_report(report) -> rich Table;  main_check(args) -> exit code
  parse_trt_version(text) -> TrtVersion;  known_versions() -> list of accepted versions

One module per job:
  errors        TrtCheckError
  rules         the rules table (load_rules, validation, RULES_FILE, SEVERITIES)
  versions      TrtVersion, parse_trt_version, known_versions, supported_ops, opset_range
  graph_view    GraphView: nodes, constants, producers and tensor types of one model
  registry      Hit, CHECKS and the @check decorator that links rule names to predicates
  checks        the predicates, one per rule "check"
  report        Finding, GraphReport, Report
  onnx_files    load_onnx, graph_files (a file, an export directory's manifest, a folder)
  checker       check_model, check_trt_compat: running the rules
  presentation  format_report, report_text, main_check

Deliberately no torch import here, not even indirectly: this runs on the board.
"""
from .checker import check_model, check_trt_compat
from .errors import TrtCheckError
from .presentation import format_report, main_check
from .versions import known_versions, parse_trt_version

__all__ = ["check_trt_compat", "check_model", "format_report", "main_check", "parse_trt_version",
           "known_versions", "TrtCheckError"]
