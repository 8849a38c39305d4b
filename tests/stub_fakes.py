"""Fakes for contract tests of the TensorRT glue: a ``tensorrt`` module generated from the
``tensorrt-stubs`` type stubs, and a ``pycuda.driver`` with pycuda's signatures.

The fake tensorrt exposes exactly the names the stubs declare: a class attribute or a module
name the stubs lack raises AttributeError (as the real bindings would), a call whose arguments
fit none of the stub's overloads raises TypeError, and a declared name the test gave no
behaviour raises NotImplementedError. Behaviour is supplied per test as plain functions keyed
``"Class.member"``; every call is appended to ``World.calls`` so tests assert the order and the
arguments of what the project calls, never numbers the fake made up.

The stubs describe TensorRT 10.13; ``hide`` removes names to model older releases (8.5 has no
``OnnxParserFlag`` and no ``STRONGLY_TYPED``).
"""
import ast
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np


def stub_file() -> Optional[Path]:
    """tensorrt_bindings/tensorrt.pyi of the installed tensorrt-stubs, or None."""
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).parent / "tensorrt_bindings" / "tensorrt.pyi"
    return path if path.is_file() else None


STUBS_MISSING = "tensorrt-stubs is not installed (pip install -e .[dev])"


# --------------------------------------------------------------------------- reading the stubs

class StubClass(object):
    def __init__(self, name: str):
        self.name = name
        self.bases = []  # type: List[str]
        self.members = {}  # type: Dict[str, List[inspect.Signature]]  # methods: their overloads
        self.attributes = set()  # type: set
        self.enum_members = []  # type: List[str]
        self.nested = {}  # type: Dict[str, StubClass]


def _signature(function: ast.FunctionDef, method: bool = True) -> inspect.Signature:
    """The stub's parameters (names, kinds, which have defaults); types are not checked."""
    args = function.args
    params = []
    positional = list(args.posonlyargs) + list(args.args)
    first_default = len(positional) - len(args.defaults)
    for index, arg in enumerate(positional):
        kind = (inspect.Parameter.POSITIONAL_ONLY if index < len(args.posonlyargs)
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        default = None if index >= first_default else inspect.Parameter.empty
        params.append(inspect.Parameter(arg.arg, kind, default=default))
    if args.vararg:
        params.append(inspect.Parameter(args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY,
                                        default=inspect.Parameter.empty if default is None else None))
    if args.kwarg:
        params.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)
    if method and params and not static:
        params = params[1:]  # self
    return inspect.Signature(params)


def _is_property(function: ast.FunctionDef) -> bool:
    return any((isinstance(d, ast.Name) and d.id == "property") or
               (isinstance(d, ast.Attribute) and d.attr in ("setter", "getter")) for d in function.decorator_list)


def _read_class(node: ast.ClassDef) -> StubClass:
    stub = StubClass(node.name)
    stub.bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            if _is_property(item):
                stub.attributes.add(item.name)
            else:
                stub.members.setdefault(item.name, []).append(_signature(item))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            stub.attributes.add(item.target.id)
            if node.name in ast.dump(item.annotation) and "ClassVar" in ast.dump(item.annotation) \
                    and not item.target.id.startswith("__"):
                stub.enum_members.append(item.target.id)
        elif isinstance(item, ast.Assign):
            stub.attributes.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(item, ast.ClassDef):
            stub.nested[item.name] = _read_class(item)
    return stub


def read_stubs(path: Path) -> Tuple[Dict[str, StubClass], Dict[str, List[inspect.Signature]], List[str]]:
    """(classes, module functions, module values) declared by tensorrt.pyi."""
    tree = ast.parse(Path(path).read_text())
    classes, functions, values = {}, {}, []  # type: Dict[str, StubClass], Dict[str, List[inspect.Signature]], List[str]
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = _read_class(node)
        elif isinstance(node, ast.FunctionDef):
            functions.setdefault(node.name, []).append(_signature(node, method=False))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            values.append(node.target.id)
    return classes, functions, values


# --------------------------------------------------------------------------- the fake module

class World(object):
    """Behaviour and the call log shared by every fake object of one fake tensorrt."""

    def __init__(self, behaviour: Dict[str, Callable]):
        self.behaviour = dict(behaviour)
        self.calls = []  # type: List[Tuple[str, tuple, dict]]

    def names(self) -> List[str]:
        return [name for name, _, _ in self.calls]

    def called(self, name: str) -> List[Tuple[tuple, dict]]:
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


def _check_call(where: str, overloads: Sequence[inspect.Signature], args: tuple, kwargs: dict) -> None:
    for signature in overloads:
        try:
            signature.bind(*args, **kwargs)
            return
        except TypeError:
            continue
    raise TypeError(f"{where}{args!r} {kwargs!r} matches none of the stub's signatures: "
                    + "; ".join(str(s) for s in overloads))


class _Member(object):
    """A declared name of a stub class: behaviour from the World, arguments checked."""

    def __init__(self, owner: str, name: str, overloads: Sequence[inspect.Signature]):
        self.owner, self.name, self.overloads = owner, name, list(overloads)

    def __get__(self, instance, cls):
        if instance is None:
            return self  # hasattr(trt.ICudaEngine, "num_io_tensors") is True, as on the real class
        key = f"{self.owner}.{self.name}"
        values = instance.__dict__["_fake_values"]
        if self.name in values:
            return values[self.name]
        world = instance.__dict__["_fake_world"]

        def behaviour():
            if key not in world.behaviour:
                raise NotImplementedError(f"the fake tensorrt has no behaviour for {key} (declared in the stubs)")
            return world.behaviour[key]

        if not self.overloads:  # an attribute or property: behaviour(instance) is its value
            world.calls.append((key, (), {}))
            return behaviour()(instance)

        def method(*args, **kwargs):
            _check_call(key, self.overloads, args, kwargs)
            world.calls.append((key, args, kwargs))
            return behaviour()(instance, *args, **kwargs)
        return method

    def __set__(self, instance, value):
        world = instance.__dict__["_fake_world"]
        world.calls.append((f"{self.owner}.{self.name}=", (value,), {}))
        instance.__dict__["_fake_values"][self.name] = value


class _Enum(object):
    """A member of a pybind11 enum: ``.name``, ``int()``, equality by value."""

    def __init__(self, owner: str, name: str, value: int):
        self.owner, self.name, self.value = owner, name, value

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, other) -> bool:
        return isinstance(other, _Enum) and (self.owner, self.value) == (other.owner, other.value)

    def __hash__(self) -> int:
        return hash((self.owner, self.value))

    def __repr__(self) -> str:
        return f"<{self.owner}.{self.name}: {self.value}>"


class FakeObject(object):
    """Base of every generated class: only declared names may be set."""

    def __init__(self, *args, **kwargs):
        world = type(self)._fake_world
        object.__setattr__(self, "_fake_world", world)
        object.__setattr__(self, "_fake_values", {})
        key = f"{type(self).__name__}.__init__"
        overloads = type(self)._fake_init
        if overloads:
            _check_call(key, overloads, args, kwargs)
        world.calls.append((key, args, kwargs))
        object.__setattr__(self, "_fake_args", (args, kwargs))

    def __setattr__(self, name, value):
        if not hasattr(type(self), name):
            raise AttributeError(f"tensorrt.{type(self).__name__} has no attribute {name!r} in the stubs")
        object.__setattr__(self, name, value)


def _make_class(stub: StubClass, qualified: str, classes: Dict[str, StubClass], world: World, hidden: set) -> type:
    namespace = {"_fake_world": world, "_fake_init": []}  # type: Dict[str, Any]
    chain, seen = [stub], set()
    while chain:  # members inherited from stub base classes
        current = chain.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        for name, overloads in current.members.items():
            if f"{qualified}.{name}" in hidden:
                continue
            if name == "__init__":
                if current is stub:
                    namespace["_fake_init"] = overloads
                continue
            if name.startswith("__"):
                continue
            namespace.setdefault(name, _Member(qualified, name, overloads))
        for name in current.attributes:
            if not name.startswith("__") and name not in current.enum_members and f"{qualified}.{name}" not in hidden:
                namespace.setdefault(name, _Member(qualified, name, ()))
        chain.extend(classes[b] for b in current.bases if b in classes)
    for index, name in enumerate(stub.enum_members):
        if f"{qualified}.{name}" not in hidden:
            namespace[name] = _Enum(qualified, name, index)
    for name, nested in stub.nested.items():
        namespace[name] = _make_class(nested, f"{qualified}.{name}", classes, world, hidden)
    if stub.enum_members:  # enum classes: members also reachable as Class.__members__
        namespace["__members__"] = {n: namespace[n] for n in stub.enum_members if n in namespace}
    return type(qualified.rsplit(".", 1)[-1], (FakeObject,), namespace)


def fake_tensorrt(behaviour: Dict[str, Callable], version: str = "10.13.0.35", hide: Sequence[str] = (),
                  path: Optional[Path] = None) -> Tuple[ModuleType, World]:
    """A ``tensorrt`` module made from the stubs, and the World recording its calls."""
    classes, functions, values = read_stubs(path or stub_file())
    world = World(behaviour)
    hidden = set(hide)

    class FakeModule(ModuleType):
        def __getattr__(self, name):
            raise AttributeError(f"module 'tensorrt' has no attribute {name!r} (not in the stubs, or hidden "
                                 f"to model an older TensorRT)")

    module = FakeModule("tensorrt")
    module.__version__ = version
    # No file, like tensorrt-stubs' own namespace package: inspect caches each module's file by
    # name, and a test importing the stubs after this fake had been recorded there crashed the
    # next torch._dynamo import ("is a built-in module") in that process.
    module.__file__ = None
    made = {}
    for name, stub in classes.items():
        if name not in hidden:
            made[name] = _make_class(stub, name, classes, world, hidden)
            setattr(module, name, made[name])
    for name, overloads in functions.items():
        if name in hidden:
            continue

        def function(*args, _name=name, _overloads=overloads, **kwargs):
            _check_call(_name, _overloads, args, kwargs)
            world.calls.append((_name, args, kwargs))
            if _name not in world.behaviour:
                raise NotImplementedError(f"the fake tensorrt has no behaviour for {_name} (declared in the stubs)")
            return world.behaviour[_name](*args, **kwargs)
        setattr(module, name, function)
    data_type = made.get("DataType")
    aliases = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8", "int32": "INT32",
               "int64": "INT64", "uint8": "UINT8", "bool": "BOOL", "fp8": "FP8", "int4": "INT4", "fp4": "FP4",
               "e8m0": "E8M0"}
    for name in values:
        if data_type is not None and name in aliases and hasattr(data_type, aliases[name]):
            setattr(module, name, getattr(data_type, aliases[name]))
    return module, world


def instance(module: ModuleType, class_name: str) -> Any:
    """An object of a stub class that user code never constructs (an engine, a context, ...)."""
    cls = getattr(module, class_name)
    obj = object.__new__(cls)
    object.__setattr__(obj, "_fake_world", cls._fake_world)
    object.__setattr__(obj, "_fake_values", {})
    return obj


# --------------------------------------------------------------------------- a fake pycuda

class FakeCuda(object):
    """``pycuda.driver`` with pycuda's names and parameters, recording every call in ``calls``.

    Device memory is a dict of integer addresses to bytearrays, so copies move real bytes."""

    def __init__(self, devices: int = 1):
        self.calls = []  # type: List[Tuple[str, tuple]]
        self.memory = {}  # type: Dict[int, bytearray]
        self.retained = 0
        self._next = 0x10000
        cuda = self

        class Device(object):
            def __init__(self, number):
                cuda.calls.append(("Device", (number,)))

            @staticmethod
            def count():
                return devices

            def name(self):
                return "Fake GPU"

            def compute_capability(self):
                return (9, 0)

            def retain_primary_context(self):
                cuda.calls.append(("retain_primary_context", ()))
                cuda.retained += 1
                return Context()

        class Context(object):
            def push(self):
                cuda.calls.append(("Context.push", ()))

            @staticmethod
            def pop():
                cuda.calls.append(("Context.pop", ()))

            def detach(self):
                cuda.calls.append(("Context.detach", ()))
                cuda.retained -= 1

        class Stream(object):
            def __init__(self, flags=0):
                self.handle = 0xABC

            def synchronize(self):
                cuda.calls.append(("Stream.synchronize", ()))

        class DeviceAllocation(object):
            def __init__(self, address):
                self.address = address

            def __int__(self):
                return self.address

            def free(self):
                cuda.calls.append(("DeviceAllocation.free", (self.address,)))
                cuda.memory.pop(self.address, None)

        self.Device, self.Context, self.Stream = Device, Context, Stream
        self._allocation = DeviceAllocation
        self.host_alloc_flags = SimpleNamespace(PORTABLE=1, DEVICEMAP=2, WRITECOMBINED=4)

    def init(self, flags=0):
        self.calls.append(("init", ()))

    def mem_alloc(self, bytes):  # noqa: A002 - pycuda's parameter name
        address = self._next
        self._next += (int(bytes) + 0xFFF) // 0x1000 * 0x1000 + 0x1000
        self.memory[address] = bytearray(int(bytes))
        self.calls.append(("mem_alloc", (int(bytes),)))
        return self._allocation(address)

    def pagelocked_empty(self, shape, dtype, order="C", mem_flags=0):
        return np.empty(shape, dtype, order=order)

    def memcpy_htod_async(self, dest, src, stream=None):
        data = np.ascontiguousarray(src).tobytes()
        self.memory[int(dest)][:len(data)] = data
        self.calls.append(("memcpy_htod_async", (int(dest), len(data))))

    def memcpy_dtoh_async(self, dest, src, stream=None):
        count = dest.nbytes
        dest.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(self.memory[int(src)][:count]), np.uint8)
        self.calls.append(("memcpy_dtoh_async", (int(src), count)))

    def memcpy_dtoh(self, dest, src):
        self.memcpy_dtoh_async(dest, src)

    def names(self) -> List[str]:
        return [name for name, _ in self.calls]
