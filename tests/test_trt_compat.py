"""TensorRT compatibility checker: tiny hand-built ONNX graphs that break one rule each.

Torch-free on purpose (only numpy + onnx): the checker must run where torch is absent.
"""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from infusionnet.export.trt_compat import (TrtCheckError, check_model, check_trt_compat, format_report, main_check,
                                           parse_trt_version)
from infusionnet.export.trt_compat.presentation import report_text
from infusionnet.export.trt_compat.registry import CHECKS
from infusionnet.export.trt_compat.report import Report
from infusionnet.export.trt_compat.rules import load_rules
from infusionnet.export.trt_compat.versions import supported_ops
from infusionnet.runtime.errors import InfusionNetError

ALL_VERSIONS = ["8.2", "8.4", "8.5", "8.6", "10", "10.3", "10.15"]
FLOAT = TensorProto.FLOAT


# ----------------------------------------------------------------------------------------------
# graph builders
# ----------------------------------------------------------------------------------------------

def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def vinfo(name, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def make(nodes, inputs, outputs, initializers=(), opset=13, extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def conv_model(dynamic_weights=False, group=1, dynamic_bias=False, weight_from=None):
    """x (1,4,8,8) -> Conv -> y. W is an initializer unless dynamic; weight_from picks other sources."""
    cin, cout = 4, 4
    w_shape = [cout, cin // group, 3, 3]
    inputs = [vinfo("x", [1, cin, 8, 8])]
    inits, nodes = [], []
    if dynamic_weights:
        inputs.append(vinfo("w", w_shape))
    elif weight_from == "dq":   # explicitly quantized weights, the pre-8.5 quantized path
        inits += [const("w_q", np.ones(w_shape, np.int8)), const("w_s", np.float32(0.1)),
                  const("w_zp", np.int8(0))]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w"], name="dq_w"))
    elif weight_from == "reshape":  # computed from constants only: needs constant folding
        inits += [const("w_flat", np.ones(int(np.prod(w_shape)), np.float32)),
                  const("w_shape", np.array(w_shape, np.int64))]
        nodes.append(helper.make_node("Reshape", ["w_flat", "w_shape"], ["w"], name="reshape_w"))
    else:
        inits.append(const("w", np.ones(w_shape, np.float32)))
    if dynamic_bias:
        inputs.append(vinfo("b", [cout]))
    else:
        inits.append(const("b", np.zeros(cout, np.float32)))
    nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=group,
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    return make(nodes, inputs, [vinfo("y", [1, cout, 8, 8])], inits)


def clean_model():
    """Conv + InstanceNorm (initializer params) + reflect-free Resize: fine on every version."""
    inits = [const("w", np.ones([4, 4, 3, 3], np.float32)), const("b", np.zeros(4, np.float32)),
             const("s", np.ones(4, np.float32)), const("nb", np.zeros(4, np.float32)),
             const("scales", np.array([1, 1, 2, 2], np.float32))]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("InstanceNormalization", ["c", "s", "nb"], ["n"], name="norm"),
        helper.make_node("LeakyRelu", ["n"], ["r"], name="act", alpha=0.01),
        helper.make_node("Resize", ["r", "", "scales"], ["y"], name="up", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ]
    return make(nodes, [vinfo("x", [1, 4, 8, 8])], [vinfo("y", [1, 4, 16, 16])], inits)


def single_op_model(op, extra_inputs=(), inits=(), out_shape=None, out_elem=FLOAT, opset=13, domain="", **attrs):
    node = helper.make_node(op, ["x"] + list(extra_inputs), ["y"], name="node", domain=domain, **attrs)
    extra = [domain] if domain else []
    return make([node], [vinfo("x", [1, 4, 8, 8])], [vinfo("y", out_shape, out_elem)], inits,
                opset=opset, extra_opsets=extra)


def findings(report, rule_id, severity=None):
    return [f for f in report.findings
            if f.rule_id == rule_id and (severity is None or f.severity == severity)]


def run(model, version):
    return check_model(model, version, name="m.onnx")


# ----------------------------------------------------------------------------------------------
# versions and rules file
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, profile", [
    ("8.2", (8, 2), "8.2"), ("8.5.3", (8, 5), "8.5"), ("8.6", (8, 6), "8.6"),
    ("10", (10, 0), "10.0"), ("10.3", (10, 3), "10.0"), ("10.3.0.26", (10, 3), "10.0")])
def test_versions_parse(text, key, profile):
    version = parse_trt_version(text)
    assert (version.key, version.profile, version.text) == (key, profile, text)


@pytest.mark.parametrize("text", ["7.1", "9.0", "8", "10.99", "latest", ""])
def test_unknown_version_lists_known_ones(text):
    with pytest.raises(TrtCheckError) as info:
        parse_trt_version(text)
    message = str(info.value)
    assert "unknown TensorRT version" in message and "8.2" in message and "8.6" in message and "10" in message
    assert "\n" not in message


def test_rules_file_is_complete_and_sourced():
    rules = load_rules()
    ids = [r["id"] for r in rules["rules"]]
    assert len(ids) == len(set(ids))
    for rule in rules["rules"]:
        assert rule["check"] in CHECKS, rule["id"]
        assert rule["sources"] and rule["confirmed"] and rule["description"], rule["id"]
        for level in rule["levels"]:
            assert level["severity"] in ("error", "warning", "info")
    for profile, info in rules["versions"].items():
        assert info["ops_source"] and info["ops_derivation"] and info["opset_max"] >= 13
    # The lists encode what the docs say about the operators this project cares about.
    ops = {v: supported_ops(parse_trt_version(v)) for v in ALL_VERSIONS}
    assert "NonZero" not in ops["8.2"] and "NonZero" in ops["8.5"]
    assert "LayerNormalization" not in ops["8.5"] and "LayerNormalization" in ops["8.6"]
    assert "DeformConv" not in ops["10"] and "DeformConv" in ops["10.3"]
    assert all("Unique" not in o and {"Conv", "Pad", "InstanceNormalization", "GatherND"} <= o
               for o in ops.values())


# ----------------------------------------------------------------------------------------------
# rules on tiny graphs
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_clean_graph_has_no_errors_or_warnings(version):
    report = run(clean_model(), version)
    assert report.ok
    assert [f.rule_id for f in report.findings if f.severity != "info"] == []


@pytest.mark.parametrize("version, expect_error", [
    ("8.2", True), ("8.4", True), ("8.5", False), ("8.6", False), ("10", False), ("10.3", False)])
def test_dynamic_weight_conv_is_an_error_before_8_5(version, expect_error):
    report = run(conv_model(dynamic_weights=True), version)
    hits = findings(report, "conv-dynamic-weights")
    if expect_error:
        assert [(f.severity, f.node, f.op_type) for f in hits] == [("error", "conv", "Conv")]
        assert "--graph baked" in hits[0].remedy and "onnx-tensorrt" in hits[0].source
        assert not report.ok
    else:
        assert hits == [] and report.ok


def test_quantized_weights_are_not_dynamic_on_8_2():
    report = run(conv_model(weight_from="dq"), "8.2")
    assert findings(report, "conv-dynamic-weights") == []
    assert report.ok


def test_weights_computed_from_constants_suggest_folding():
    hits = findings(run(conv_model(weight_from="reshape"), "8.2"), "conv-dynamic-weights", "error")
    assert len(hits) == 1 and "constant-folding" in hits[0].message


def test_dynamic_bias_is_an_error_only_before_8_5():
    assert findings(run(conv_model(dynamic_bias=True), "8.2"), "conv-dynamic-bias", "error")
    assert findings(run(conv_model(dynamic_bias=True), "8.5"), "conv-dynamic-bias") == []


def test_grouped_dynamic_weights_are_flagged_per_version():
    model = conv_model(dynamic_weights=True, group=2)
    assert [f.severity for f in findings(run(model, "8.2"), "conv-dynamic-weights-grouped")] == []
    assert [f.severity for f in findings(run(model, "8.5"), "conv-dynamic-weights-grouped")] == ["warning"]
    assert [f.severity for f in findings(run(model, "10"), "conv-dynamic-weights-grouped")] == ["warning"]
    assert [f.severity for f in findings(run(model, "10.4"), "conv-dynamic-weights-grouped")] == ["info"]
    assert run(model, "8.5").ok


def test_dynamic_weights_with_symbolic_shape_warn():
    model = conv_model(dynamic_weights=True)
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_param = "K"
    hits = findings(run(model, "8.5"), "conv-dynamic-weight-shape", "warning")
    assert len(hits) == 1 and "K" in hits[0].message


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_reflect_pad_is_an_info_note_on_supported_versions(version):
    model = single_op_model("Pad", ["pads"], [const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))],
                            out_shape=[1, 4, 10, 10], mode="reflect")
    report = run(model, version)
    assert [f.severity for f in findings(report, "pad-reflect-edge")] == ["info"]
    assert report.ok


def test_wrap_pad_needs_tensorrt_10():
    model = single_op_model("Pad", ["pads"], [const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))],
                            out_shape=[1, 4, 10, 10], opset=19, mode="wrap")
    assert findings(run(model, "8.6"), "pad-wrap", "error")
    assert findings(run(model, "10"), "pad-wrap") == []


def test_pads_computed_at_run_time_warn():
    model = make([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode="reflect")],
                 [vinfo("x", [1, 4, 8, 8]), vinfo("pads", [8], TensorProto.INT64)], [vinfo("y", None)])
    assert [f.node for f in findings(run(model, "8.5"), "pad-dynamic-pads", "warning")] == ["pad"]


def test_pads_through_a_2d_reshape_name_it_on_8x():
    nodes = [helper.make_node("Reshape", ["p", "shape2d"], ["p2"], name="reshape2d"),
             helper.make_node("Transpose", ["p2"], ["p3"], name="swap", perm=[1, 0]),
             helper.make_node("Reshape", ["p3", "flat"], ["pads"], name="flatten"),
             helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode="reflect")]
    model = make(nodes, [vinfo("x", [1, 4, 8, 8]), vinfo("p", [8], TensorProto.INT64)], [vinfo("y", None)],
                 [const("shape2d", np.array([4, 2], np.int64)), const("flat", np.array([-1], np.int64))])
    old = findings(run(model, "8.2"), "pad-dynamic-pads", "warning")
    assert len(old) == 1 and "here it is reshape2d" in old[0].message and "#264" in old[0].message
    new = findings(run(model, "10"), "pad-dynamic-pads", "warning")
    assert len(new) == 1 and "reshape2d" not in new[0].message


def instancenorm_computed_scale_model():
    nodes = [helper.make_node("ReduceMean", ["style"], ["s"], name="style_mean", axes=[0], keepdims=0),
             helper.make_node("InstanceNormalization", ["x", "s", "nb"], ["y"], name="norm")]
    return make(nodes, [vinfo("x", [1, 4, 8, 8]), vinfo("style", [2, 4])], [vinfo("y", [1, 4, 8, 8])],
                [const("nb", np.zeros(4, np.float32))])


@pytest.mark.parametrize("version, severity", [
    ("8.2", "error"), ("8.5", "error"), ("8.6", "error"), ("10", "info"), ("10.3", "info")])
def test_instancenorm_with_computed_scale(version, severity):
    report = run(instancenorm_computed_scale_model(), version)
    hits = findings(report, "instancenorm-dynamic-params")
    assert [(f.severity, f.node) for f in hits] == [(severity, "norm")]
    assert "scale" in hits[0].message
    if version == "8.6":
        assert "NATIVE_INSTANCENORM" in hits[0].message


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_gathernd_warns_everywhere(version):
    model = single_op_model("GatherND", ["idx"], [const("idx", np.zeros([1, 1], np.int64))], out_shape=None)
    report = run(model, version)
    assert [f.severity for f in findings(report, "gathernd")] == ["warning"]
    assert findings(report, "unsupported-op") == []


def test_if_is_flagged_as_control_flow():
    then_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [vinfo("t", None)])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [vinfo("e", None)])
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)
    model = make([node], [vinfo("x", [1, 4]), vinfo("cond", [], TensorProto.BOOL)], [vinfo("y", None)])
    for version in ("8.2", "10"):
        hits = findings(run(model, version), "control-flow", "warning")
        assert [(f.node, f.op_type) for f in hits] == [("branch", "If")]


def test_operators_inside_subgraphs_are_checked():
    then_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [vinfo("t", None)])
    else_graph = helper.make_graph([helper.make_node("Unique", ["x"], ["e"])], "else", [], [vinfo("e", None)])
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)
    model = make([node], [vinfo("x", [4]), vinfo("cond", [], TensorProto.BOOL)], [vinfo("y", None)])
    hits = findings(run(model, "10"), "unsupported-op", "error")
    assert [(f.node, f.op_type) for f in hits] == [("branch/Unique#0", "Unique")]


def test_failed_shape_inference_is_reported_not_fatal(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("inference exploded\nsecond line")
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", broken)
    report = run(conv_model(dynamic_weights=True), "8.2")
    hits = findings(report, "shape-inference", "warning")
    assert len(hits) == 1 and "inference exploded" in hits[0].message and "second line" not in hits[0].message
    assert findings(report, "conv-dynamic-weights", "error")  # structural rules still run


def test_nonzero_is_unsupported_before_8_5_and_data_dependent_after():
    model = single_op_model("NonZero", out_shape=None, out_elem=TensorProto.INT64)
    old, new = run(model, "8.2"), run(model, "8.5")
    assert findings(old, "unsupported-op", "error") and findings(old, "data-dependent-shape", "warning")
    assert findings(new, "unsupported-op") == [] and findings(new, "data-dependent-shape", "warning")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unique_and_unknown_ops_are_errors(version):
    assert findings(run(single_op_model("Unique", out_shape=None), version), "unsupported-op", "error")
    assert findings(run(single_op_model("NotAnOnnxOp", out_shape=None), version), "unsupported-op", "error")
    custom = run(single_op_model("FusedThing", out_shape=None, domain="com.example"), version)
    hits = findings(custom, "custom-domain-op", "error")
    assert len(hits) == 1 and "com.example" in hits[0].message and not custom.ok


def qdq_model(zero_point, zp_type=np.int8, data_type=TensorProto.FLOAT):
    inits = [const("s", np.float32(0.05)), const("zp", np.array(zero_point, zp_type))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant"),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant")]
    return make(nodes, [vinfo("x", [1, 4, 8, 8], data_type)], [vinfo("y", [1, 4, 8, 8])], inits)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_symmetric_int8_qdq_is_clean(version):
    assert run(qdq_model(0), version).ok


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_nonzero_zero_point_is_an_error(version):
    hits = findings(run(qdq_model(3), version), "qdq-zero-point", "error")
    assert sorted(f.node for f in hits) == ["dequant", "quant"] and "3" in hits[0].message


def test_uint8_quantization_is_an_error():
    report = run(qdq_model(0, np.uint8), "10")
    hits = findings(report, "qdq-quantized-type", "error")
    assert len(hits) == 2 and "UINT8" in hits[0].message and "QInt8" in hits[0].message


def test_int32_quantized_bias_points_at_quantize_bias_option():
    model = conv_model()
    model.graph.initializer.extend([const("b_q", np.zeros(4, np.int32)), const("b_s", np.full(4, 0.01, np.float32)),
                                    const("b_zp", np.zeros(4, np.int32))])
    model.graph.node.insert(0, helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_zp"], ["b_dq"], name="dq_b"))
    model.graph.node[1].input[2] = "b_dq"
    for version in ("8.2", "10"):
        hits = findings(run(model, version), "qdq-quantized-type", "error")
        assert [f.node for f in hits] == ["dq_b"] and "QuantizeBias" in hits[0].message
    assert findings(run(model, "8.2"), "conv-dynamic-bias", "error")


def test_per_channel_activation_quantization_is_an_error_on_8x():
    model = qdq_model(np.zeros(4), np.int8)
    for name, values in (("s", np.full(4, 0.05, np.float32)),):
        model.graph.initializer[0].CopyFrom(const(name, values))
    for node in model.graph.node:
        node.attribute.append(helper.make_attribute("axis", 1))
    assert findings(run(model, "8.5"), "qdq-per-channel-activation", "error")
    assert findings(run(model, "10"), "qdq-per-channel-activation", "warning")


def test_dynamic_inputs_are_listed_for_optimization_profiles():
    model = single_op_model("Relu", out_shape=[1, 4, "h", "w"])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    hits = findings(run(model, "8.6"), "dynamic-input-shape", "info")
    assert len(hits) == 1 and "x[1, 4, height, width]" in hits[0].message


def test_fp16_graph_notes_and_fp16_normalization_warns():
    inits = [const("s", np.ones(4, np.float16)), const("nb", np.zeros(4, np.float16))]
    node = helper.make_node("InstanceNormalization", ["x", "s", "nb"], ["y"], name="norm")
    model = make([node], [vinfo("x", [1, 4, 8, 8], TensorProto.FLOAT16)],
                 [vinfo("y", [1, 4, 8, 8], TensorProto.FLOAT16)], inits)
    report = run(model, "8.5")
    assert findings(report, "fp16-graph", "info") and findings(report, "fp16-normalization", "warning")
    assert report.ok


def test_mixed_precision_instancenorm_is_an_error_on_10():
    inits = [const("s", np.ones(4, np.float32)), const("nb", np.zeros(4, np.float32))]
    node = helper.make_node("InstanceNormalization", ["x", "s", "nb"], ["y"], name="norm")
    model = make([node], [vinfo("x", [1, 4, 8, 8], TensorProto.FLOAT16)], [vinfo("y", None)], inits)
    assert findings(run(model, "10"), "instancenorm-dtypes", "error")
    assert findings(run(model, "8.5"), "instancenorm-dtypes") == []


def test_casts_to_double_and_int64():
    nodes = [helper.make_node("Cast", ["x"], ["d"], name="to_double", to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["d"], ["i"], name="to_int64", to=TensorProto.INT64),
             helper.make_node("Cast", ["i"], ["y"], name="back", to=TensorProto.FLOAT)]
    model = make(nodes, [vinfo("x", [1, 4])], [vinfo("y", [1, 4])])
    old, new = run(model, "8.2"), run(model, "10")
    assert findings(old, "double-cast-down", "warning") and findings(new, "double-cast-down", "warning")
    assert findings(old, "int64-cast-down", "info") and findings(new, "int64-cast-down") == []
    assert old.ok and new.ok
    io = make([helper.make_node("ArgMax", ["x"], ["y"], name="argmax", axis=1)],
              [vinfo("x", [1, 4])], [vinfo("y", [1, 1], TensorProto.INT64)])
    hits = findings(run(io, "8.5"), "int64-io", "warning")
    assert len(hits) == 1 and "INT32" in hits[0].message and "y" in hits[0].message
    assert findings(run(io, "10"), "int64-io", "info")
    bad = make([helper.make_node("Cast", ["x"], ["y"], name="to_u16", to=TensorProto.UINT16)],
               [vinfo("x", [1, 4])], [vinfo("y", [1, 4], TensorProto.UINT16)])
    assert findings(run(bad, "10"), "unsupported-dtype", "error")


def test_cubic_resize_is_an_error():
    model = single_op_model("Resize", ["", "scales"], [const("scales", np.array([1, 1, 2, 2], np.float32))],
                            out_shape=[1, 4, 16, 16], mode="cubic")
    hits = findings(run(model, "8.2"), "resize-mode", "error")
    assert len(hits) == 1 and "mode=cubic" in hits[0].message


def test_opset_above_the_parser_range_warns():
    model = clean_model()
    model.opset_import[0].version = 17
    assert findings(run(model, "8.2"), "opset-range", "warning")
    assert findings(run(model, "8.5"), "opset-range") == []


def test_constant_nodes_count_as_initializers():
    model = conv_model(dynamic_weights=True)
    # Replace the graph input w by a Constant node: the parser imports it as weights.
    del model.graph.input[1]
    model.graph.node.insert(0, helper.make_node("Constant", [], ["w"], name="w_const",
                                                value=const("w_value", np.ones([4, 4, 3, 3], np.float32))))
    report = run(model, "8.2")
    assert findings(report, "conv-dynamic-weights") == [] and report.ok
    assert findings(report, "constant-nodes", "info")


# ----------------------------------------------------------------------------------------------
# files, directories, report objects and the CLI body
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def export_dir(tmp_path):
    onnx.save(clean_model(), str(tmp_path / "baked.onnx"))
    onnx.save(conv_model(dynamic_weights=True), str(tmp_path / "content.onnx"))
    (tmp_path / "notes.txt").write_text("not a graph")
    return tmp_path


def test_directory_without_manifest_checks_every_onnx(export_dir):
    report = check_trt_compat(export_dir, "8.2")
    assert [g.name for g in report.graphs] == ["baked.onnx", "content.onnx"]
    assert report.graph("baked.onnx").ok and not report.graph("content.onnx").ok and not report.ok


def test_directory_with_manifest_checks_only_listed_graphs(export_dir):
    (export_dir / "manifest.json").write_text(json.dumps({"graphs": [{"role": "baked", "file": "baked.onnx"}]}))
    report = check_trt_compat(export_dir, "8.2")
    assert [g.name for g in report.graphs] == ["baked.onnx"] and report.ok
    (export_dir / "manifest.json").write_text(json.dumps({"graphs": {"content": {"file": "gone.onnx"}}}))
    with pytest.raises(TrtCheckError, match="gone.onnx"):
        check_trt_compat(export_dir, "8.2")


def test_summary_is_small_and_json_able(export_dir):
    summary = check_trt_compat(export_dir, "10").summary()
    text = json.dumps(summary)
    assert summary["ok"] is True and summary["checked_as"] == "10.0" and summary["trt_version"] == "10"
    assert set(summary["graphs"]) == {"baked.onnx", "content.onnx"} and len(text) < 4000
    summary82 = check_trt_compat(export_dir, "8.2").summary()
    assert summary82["graphs"]["content.onnx"]["error_rules"] == ["conv-dynamic-weights"]


@pytest.mark.parametrize("make_path", [
    lambda d: d / "missing.onnx",
    lambda d: d / "missing_dir",
])
def test_bad_paths_raise_one_line_errors(tmp_path, make_path):
    path = make_path(tmp_path)
    with pytest.raises(TrtCheckError) as info:
        check_trt_compat(path, "8.5")
    assert isinstance(info.value, InfusionNetError) and path.name in str(info.value) and "\n" not in str(info.value)


def test_non_onnx_files_and_empty_dirs_raise(tmp_path):
    text = tmp_path / "model.onnx"
    text.write_text("definitely not protobuf \x00\x01 data")
    with pytest.raises(TrtCheckError, match="model.onnx"):
        check_trt_compat(text, "8.5")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrtCheckError, match="no ONNX graphs"):
        check_trt_compat(empty, "8.5")


class Args:
    def __init__(self, path, trt):
        self.path, self.trt = str(path), trt


def test_main_check_exit_codes(export_dir, capsys):
    assert main_check(Args(export_dir / "baked.onnx", "8.2")) == 0
    assert "compatible" in capsys.readouterr().out
    assert main_check(Args(export_dir, "8.2")) == 1
    out = capsys.readouterr().out
    assert "conv-dynamic-weights" in out and "NOT compatible" in out
    assert main_check(Args(export_dir, "8.5")) == 0
    with pytest.raises(TrtCheckError):
        main_check(Args(export_dir / "nope.onnx", "8.5"))
    with pytest.raises(TrtCheckError, match="unknown TensorRT version"):
        main_check(Args(export_dir, "7"))


def test_format_report_is_a_rich_table(export_dir):
    from rich.table import Table
    report = check_trt_compat(export_dir, "8.2")
    table = format_report(report)
    assert isinstance(table, Table) and table.row_count >= 2
    assert "conv-dynamic-weights" in report_text(report)
    assert json.dumps(report.to_dict())  # full findings, JSON-able too


def test_table_collapses_a_rule_that_fires_on_many_nodes():
    pads = const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
    nodes = [helper.make_node("Pad", ["x" if i == 0 else f"p{i - 1}", "pads"], [f"p{i}"], name=f"pad{i}",
                              mode="reflect") for i in range(6)]
    model = make(nodes, [vinfo("x", [1, 4, 8, 8])], [vinfo("p5", None)], [pads])
    graph = run(model, "8.5")
    assert len(findings(graph, "pad-reflect-edge")) == 6
    report = Report(parse_trt_version("8.5"), [graph])
    # 2 reflect rows + "and 4 more" + the INT64 pads note
    assert format_report(report, max_per_rule=2).row_count == 4
    assert format_report(report, max_per_rule=10).row_count == 7


def test_checker_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import infusionnet.export.trt_compat as t\n"
            "print(t.parse_trt_version('8.2').profile)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "8.2"


# ----------------------------------------------------------------------------------------------
# rules added by the issue-13 audit
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version, expected", [("8.2", "plugin library"), ("8.5", "plugin library"),
                                               ("8.6", "NATIVE_INSTANCENORM"), ("10", None), ("10.3", None)])
def test_instancenorm_plugin_is_noted_where_the_parser_makes_one(version, expected):
    hits = findings(run(clean_model(), version), "instancenorm-plugin")
    if expected is None:
        assert hits == []
    else:
        assert [f.severity for f in hits] == ["info"] and expected in hits[0].message
        assert "DLA" in hits[0].message and "norm" in hits[0].message


@pytest.mark.parametrize("version", ["8.5", "10", "10.15"])
def test_tf_half_pixel_nearest_rounding_is_an_error_on_every_version(version):
    model = single_op_model("Resize", ["", "scales"], [const("scales", np.array([1, 1, 2, 2], np.float32))],
                            out_shape=[1, 4, 16, 16], mode="nearest",
                            coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="floor")
    hits = findings(run(model, version), "resize-tf-half-pixel-nearest", "error")
    assert len(hits) == 1 and "nearest_mode=floor" in hits[0].message


def test_tensorrt_8_4_is_the_ga_release():
    ops = supported_ops(parse_trt_version("8.4"))
    assert {"HardSwish", "RandomNormal", "RandomNormalLike", "Shrink"} <= ops
    model = clean_model()
    model.opset_import[0].version = 17
    assert findings(run(model, "8.4"), "opset-range") == []


def test_pooling_dilations_are_an_error_on_10():
    model = single_op_model("AveragePool", out_shape=[1, 4, 3, 3], opset=19, kernel_shape=[2, 2],
                            strides=[2, 2], dilations=[2, 2])
    hits = findings(run(model, "10"), "pool-dilations", "error")
    assert len(hits) == 1 and "[2, 2]" in hits[0].message
    plain = single_op_model("AveragePool", out_shape=[1, 4, 4, 4], opset=19, kernel_shape=[2, 2], strides=[2, 2])
    assert findings(run(plain, "10"), "pool-dilations") == []


def test_resize_with_computed_scales_needs_leading_axes_on_10():
    def model(axes):
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="nearest", axes=axes)
        return make([node], [vinfo("x", [1, 4, 8, 8]), vinfo("scales", [len(axes)])], [vinfo("y", None)], opset=18)
    hits = findings(run(model([2, 3]), "10"), "resize-computed-scales-axes", "error")
    assert len(hits) == 1 and "'scales'" in hits[0].message and "[2, 3]" in hits[0].message
    assert findings(run(model([0, 1, 2, 3]), "10"), "resize-computed-scales-axes") == []
    assert findings(run(model([2, 3]), "8.6"), "resize-computed-scales-axes") == []


def qdq_conv_model(quantize_input):
    """A conv with Q/DQ weights; its activation input goes through Q/DQ or not."""
    inits = [const("w_q", np.ones([4, 4, 1, 1], np.int8)), const("w_s", np.float32(0.1)), const("zp", np.int8(0)),
             const("x_s", np.float32(0.05))]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s", "zp"], ["w"], name="dq_w")]
    source = "x"
    if quantize_input:
        nodes += [helper.make_node("QuantizeLinear", ["x", "x_s", "zp"], ["xq"], name="q_x"),
                  helper.make_node("DequantizeLinear", ["xq", "x_s", "zp"], ["xd"], name="dq_x")]
        source = "xd"
    nodes.append(helper.make_node("Conv", [source, "w"], ["c"], name="conv"))
    # ONNX Runtime's default layout also quantizes the convolution's output:
    nodes += [helper.make_node("QuantizeLinear", ["c", "x_s", "zp"], ["cq"], name="q_c"),
              helper.make_node("DequantizeLinear", ["cq", "x_s", "zp"], ["y"], name="dq_c")]
    return make(nodes, [vinfo("x", [1, 4, 8, 8])], [vinfo("y", [1, 4, 8, 8])], inits)


@pytest.mark.parametrize("version", ["8.5", "10"])
def test_qdq_placement_warns_about_weighted_layers_with_float_inputs(version):
    hits = findings(run(qdq_conv_model(quantize_input=False), version), "qdq-placement", "warning")
    assert len(hits) == 1 and "conv" in hits[0].message and "strongly typed" in hits[0].remedy
    assert findings(run(qdq_conv_model(quantize_input=True), version), "qdq-placement") == []
    assert findings(run(clean_model(), version), "qdq-placement") == []  # no Q/DQ at all: no advice


def test_dla_limits_list_dynamic_inputs_for_dla_builds():
    dynamic = single_op_model("Relu", out_shape=None)
    dynamic.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    hits = findings(run(dynamic, "8.5"), "dla-limits", "info")
    assert len(hits) == 1 and "x has dynamic dimensions" in hits[0].message and "10.7" in hits[0].remedy
    assert findings(run(clean_model(), "8.5"), "dla-limits") == []
