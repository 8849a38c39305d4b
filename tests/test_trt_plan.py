"""TensorRT planning without TensorRT: versions, features, profiles, buffer arithmetic."""
from types import SimpleNamespace

import pytest

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.manifest import TensorSpec
from infusionnet.runtime.sizes import parse_content_size
from infusionnet.runtime.trt_plan import (
    PlanError, ShapeRange, derive_profile, detect_features, parse_version, plan_buffers, require_runtime_features,
    resolve_shape, symbol_values, tensor_nbytes, trt_dtype_name)

CONTENT_DYN = TensorSpec("content", (1, 3, "height", "width"), "float32")
KERNEL = TensorSpec("AdaOctConv1_1.h.spatial", (1, 128, 1, 3, 3), "float32")
STYLIZED_DYN = TensorSpec("stylized", (1, 3, "height", "width"), "float32")


# --------------------------------------------------------------------------- versions, features

@pytest.mark.parametrize("text, expected", [
    ("8.5.2.2", (8, 5, 2, 2)), ("10.3.0", (10, 3, 0)), ("8.6.1.post1", (8, 6, 1)), ("10.0.0b6", (10, 0, 0)),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_parse_version_rejects_garbage():
    with pytest.raises(PlanError, match="banana"):
        parse_version("banana")


def _fake_trt(version, named=True, opt_level=True, implicit=True, explicit_flag=True):
    """A module-shaped object exposing the attribute names the real bindings have."""
    engine = SimpleNamespace(num_io_tensors=0, get_tensor_name=None, get_tensor_mode=None)
    context = SimpleNamespace(set_tensor_address=None, set_input_shape=None)
    if named:
        context.execute_async_v3 = None
    else:
        context.execute_async_v2 = None
    config = SimpleNamespace(set_memory_pool_limit=None, create_timing_cache=None)
    if opt_level:
        config.builder_optimization_level = 3
    module = SimpleNamespace(__version__=version, ICudaEngine=engine, IExecutionContext=context,
                             IBuilderConfig=config, MemoryPoolType=SimpleNamespace(WORKSPACE=0),
                             BuilderFlag=SimpleNamespace(FP16=1, INT8=2, OBEY_PRECISION_CONSTRAINTS=3),
                             NetworkDefinitionCreationFlag=SimpleNamespace(
                                 **({"EXPLICIT_BATCH": 0} if explicit_flag else {})))
    if implicit:
        module.IInt8EntropyCalibrator2 = object
    return module


def test_features_of_a_jetpack5_tensorrt():
    features = detect_features(_fake_trt("8.5.2.2", opt_level=False))
    assert features.version == (8, 5, 2, 2)
    assert features.named_tensors and features.implicit_int8 and features.explicit_batch_flag
    assert not features.optimization_level
    require_runtime_features(features)  # 8.5 is enough


def test_features_of_tensorrt_10():
    features = detect_features(_fake_trt("10.3.0.26"))
    assert features.optimization_level and features.named_tensors
    # Still importable in 10, but deprecated: the project offers implicit INT8 on 8.x only.
    assert not features.implicit_int8
    assert not features.explicit_batch_flag


def test_tensorrt_without_named_api_is_refused_with_the_version_needed():
    features = detect_features(_fake_trt("8.4.3.1", named=False))
    assert not features.named_tensors
    with pytest.raises(InfusionNetError, match=r"8\.4\.3\.1 is too old.*8\.5.*execute_async_v3.*JetPack 5\.1"):
        require_runtime_features(features)


def test_trt_dtype_names():
    assert trt_dtype_name(SimpleNamespace(name="HALF")) == "float16"
    assert trt_dtype_name("DataType.FLOAT") == "float32"
    with pytest.raises(PlanError, match="FP8"):
        trt_dtype_name(SimpleNamespace(name="FP8"))


# --------------------------------------------------------------------------- sizes, profiles

def test_profile_sizes_parse_as_content_sizes():
    # `export trt --min/--opt/--max` read their sizes with the one content-size parser.
    assert parse_content_size("384x512", "--opt", PlanError) == (384, 512)
    assert parse_content_size("256", "--opt", PlanError) == (256, 256)
    with pytest.raises(PlanError, match="--max.*width 500.*multiple of 8"):
        parse_content_size("512x500", "--max", PlanError)
    with pytest.raises(PlanError, match="expected HxW"):
        parse_content_size("12x34x5", "--max", PlanError)


def test_static_graph_gets_one_fixed_profile():
    content = TensorSpec("content", (2, 3, 64, 96), "float32")
    profile = derive_profile([content, KERNEL])
    assert profile["content"] == ShapeRange((2, 3, 64, 96), (2, 3, 64, 96), (2, 3, 64, 96))
    assert profile["content"].is_fixed and profile[KERNEL.name].is_fixed


def test_dynamic_graph_profile_from_sizes():
    profile = derive_profile([CONTENT_DYN, KERNEL], min_hw=(256, 256), opt_hw=(480, 640), max_hw=(720, 1280))
    assert profile["content"] == ShapeRange((1, 3, 256, 256), (1, 3, 480, 640), (1, 3, 720, 1280))
    assert profile[KERNEL.name].is_fixed  # kernels keep their shape whatever the frame size


def test_dynamic_profile_defaults_to_the_export_size():
    profile = derive_profile([CONTENT_DYN], default_hw=(256, 256), max_hw=(512, 512))
    assert profile["content"] == ShapeRange((1, 3, 256, 256), (1, 3, 256, 256), (1, 3, 512, 512))
    with pytest.raises(PlanError, match="--opt"):
        derive_profile([CONTENT_DYN])


@pytest.mark.parametrize("sizes, message", [
    (dict(min_hw=(512, 256), opt_hw=(256, 256)), r"heights must satisfy min <= opt <= max, got 512, 256"),
    (dict(opt_hw=(256, 256), max_hw=(256, 128)), r"widths .* 256, 256, 128"),
    (dict(opt_hw=(250, 256)), r"--opt: height 250 must be a multiple of 8"),
    (dict(opt_hw=(8, 8)), r"at least 16"),
])
def test_bad_profiles_are_refused(sizes, message):
    with pytest.raises(PlanError, match=message):
        derive_profile([CONTENT_DYN], **sizes)


def test_dynamic_batch_is_refused():
    with pytest.raises(PlanError, match="only the height and width"):
        derive_profile([TensorSpec("content", ("batch", 3, 64, 64), "float32")], opt_hw=(64, 64))


def test_outputs_resolve_through_input_symbols():
    values = symbol_values([CONTENT_DYN], {"content": (1, 3, 480, 640)})
    assert values == {"height": 480, "width": 640}
    assert resolve_shape(STYLIZED_DYN, values) == (1, 3, 480, 640)
    with pytest.raises(PlanError, match="not bound"):
        resolve_shape(TensorSpec("x", (1, "depth"), "float32"), values)


def test_inputs_sharing_a_symbol_must_agree():
    other = TensorSpec("style", (1, 3, "height", "width"), "float32")
    with pytest.raises(PlanError, match="must agree"):
        symbol_values([CONTENT_DYN, other], {"content": (1, 3, 64, 64), "style": (1, 3, 64, 32)})


# --------------------------------------------------------------------------- buffers

def test_tensor_nbytes():
    assert tensor_nbytes((1, 3, 720, 1280), "float32") == 3 * 720 * 1280 * 4
    assert tensor_nbytes((2, 3, 64, 64), "float16") == 2 * 3 * 64 * 64 * 2
    assert tensor_nbytes((), "int8") == 1
    with pytest.raises(PlanError, match="complex64"):
        tensor_nbytes((1,), "complex64")
    with pytest.raises(PlanError, match="every dimension"):
        tensor_nbytes((1, "height"), "float32")


def test_buffer_plan_sizes_at_the_max_profile():
    profile = derive_profile([CONTENT_DYN, KERNEL], min_hw=(64, 64), opt_hw=(128, 128), max_hw=(256, 512))
    plan = plan_buffers([CONTENT_DYN, KERNEL], [STYLIZED_DYN], profile)
    sizes = {b.name: b.nbytes for b in plan.buffers}
    image = 3 * 256 * 512 * 4
    assert sizes == {"content": image, KERNEL.name: 128 * 9 * 4, "stylized": image}
    assert plan.host_bytes == plan.device_bytes == 2 * image + 128 * 9 * 4
    assert [b.is_input for b in plan.buffers] == [True, True, False]


def test_buffer_plan_external_kernels_and_zero_copy():
    profile = derive_profile([CONTENT_DYN, KERNEL], opt_hw=(64, 64))
    plan = plan_buffers([CONTENT_DYN, KERNEL], [STYLIZED_DYN], profile, external=[KERNEL.name], zero_copy=True)
    assert [b.name for b in plan.buffers] == ["content", "stylized"]  # kernels live in the style engine
    assert plan.device_bytes == 0 and plan.host_bytes == 2 * 3 * 64 * 64 * 4
    assert "zero copy" in plan.describe()
    with pytest.raises(PlanError, match="not inputs"):
        plan_buffers([CONTENT_DYN], [STYLIZED_DYN], profile, external=["nope"])
