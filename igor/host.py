"""The wasmtime host: a deterministic engine, a module cache, one store per agent.

Determinism settings are fixed here and reported as the engine's determinism
profile, which every checkpoint carries: NaN canonicalisation on, threads and
relaxed SIMD off, no WASI. Fuel meters every call into the guest (fuel is
deterministic, so replay must consume exactly as much); an epoch ticker thread
bounds wall-clock time per call; a store limiter bounds memory.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as _wffi
from wasmtime import _func as _wfunc

from igor import abi, errors
from igor.hostcalls import HostFunctions, HostState, ReplayMismatch
from igor.manifest import Manifest

EPOCH_INTERVAL_S = 0.002
DEFAULT_DEADLINE_MS = 15_000
DEFAULT_FUEL_PER_CALL = 1_000_000_000
DEFAULT_MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024

_VALTYPES = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}

# The tick path calls libwasmtime directly: wasmtime-py's wrappers look up the function's
# type through the C API and convert every argument on each call, which costs several
# times the call itself. Same library handle as wasmtime-py (one set of stores), but our
# own function objects, declared without argtypes so that ctypes passes the ready-made
# ctypes values we hand it as they are; wasmtime-py's own declarations stay untouched.
_LIB = ctypes.CDLL(_wffi.dll._name, handle=_wffi.dll._handle)


def _raw(name: str, restype: Any) -> Any:
    fn = getattr(_LIB, name)
    fn.restype = restype
    fn.argtypes = None
    return fn


_func_call = _raw("wasmtime_func_call", ctypes.c_void_p)
_set_fuel = _raw("wasmtime_context_set_fuel", ctypes.c_void_p)
_get_fuel = _raw("wasmtime_context_get_fuel", ctypes.c_void_p)
_set_epoch_deadline = _raw("wasmtime_context_set_epoch_deadline", None)
_memory_data = _raw("wasmtime_memory_data", ctypes.c_void_p)
_memory_data_size = _raw("wasmtime_memory_data_size", ctypes.c_size_t)
_FAST_KINDS = {"i32": _wffi.WASMTIME_I32.value, "i64": _wffi.WASMTIME_I64.value}


@functools.cache
def engine_version() -> str:
    # Part of every checkpoint's determinism profile; reading package metadata is slow.
    return importlib.metadata.version("wasmtime")


DETERMINISM_SETTINGS = {
    "nan_canonicalization": "on",
    "threads": "off",
    "relaxed_simd": "off",
    "wasi": "off",
    "metering": "fuel",
}


class _EpochTicker:
    """Advances the engine's epoch so that a guest stuck in a loop is interrupted."""

    def __init__(self, engine: wasmtime.Engine):
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="igor-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(EPOCH_INTERVAL_S):
            self._engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class CompiledModule:
    digest: bytes
    module: wasmtime.Module
    size: int
    tick_returns_hint: bool

    @property
    def digest_str(self) -> str:
        return "sha256:" + self.digest.hex()


class Engine:
    """One per process: compiled modules are shared by every agent and the replayer."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.cranelift_nan_canonicalization = True
        config.wasm_threads = False
        config.wasm_relaxed_simd = False
        self.wasmtime = wasmtime.Engine(config)
        self._modules: dict[bytes, CompiledModule] = {}
        self._lock = threading.Lock()
        self._ticker = _EpochTicker(self.wasmtime)

    @property
    def profile(self) -> tuple[str, str, dict[str, str]]:
        return ("wasmtime", engine_version(), dict(DETERMINISM_SETTINGS))

    def compile(self, wasm: bytes, expected_digest: bytes | None = None) -> CompiledModule:
        digest = hashlib.sha256(wasm).digest()
        if expected_digest is not None and digest != expected_digest:
            raise errors.DigestMismatch(
                f"module digest mismatch: expected sha256:{expected_digest.hex()}, "
                f"got sha256:{digest.hex()}"
            )
        with self._lock:
            cached = self._modules.get(digest)
        if cached:
            return cached
        try:
            module = wasmtime.Module(self.wasmtime, wasm)
        except wasmtime.WasmtimeError as exc:
            raise errors.ModuleError(f"module does not compile: {_first_line(exc)}") from None
        compiled = CompiledModule(digest, module, len(wasm), _check_exports(module))
        with self._lock:
            self._modules.setdefault(digest, compiled)
        return compiled

    def close(self) -> None:
        self._ticker.stop()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _check_exports(module: wasmtime.Module) -> bool:
    """Raise ModuleError for a missing or mistyped export; True if agent_tick returns i32."""
    exports = {e.name: e.type for e in module.exports}
    for name in abi.REQUIRED_EXPORTS:
        if name not in exports:
            raise errors.ModuleError(f"missing required export: {name}")
        if not isinstance(exports[name], wasmtime.FuncType):
            raise errors.ModuleError(f"export {name} must be a function")
    if not isinstance(exports.get(abi.EXPORT_MEMORY), wasmtime.MemoryType):
        raise errors.ModuleError("missing required export: memory")
    results = [str(t) for t in exports[abi.EXPORT_TICK].results]
    if results not in ([], ["i32"]):
        raise errors.ModuleError(f"agent_tick must return i32 or nothing, returns {results}")
    return results == ["i32"]


@dataclass(frozen=True)
class Limits:
    deadline_ms: int = DEFAULT_DEADLINE_MS
    fuel_per_call: int = DEFAULT_FUEL_PER_CALL
    max_checkpoint_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES


class _Memory:
    """Bounds-checked access to the guest's linear memory (never traps the host)."""

    def __init__(self, store: wasmtime.Store):
        self._store = store
        self._memory: wasmtime.Memory | None = None
        self._ref: Any = None

    def bind(self, memory: wasmtime.Memory) -> None:
        self._memory = memory  # keeps the struct that _ref points into alive
        self._ref = ctypes.byref(memory._memory)

    # Every access asks the store for its context: once the store is closed that raises
    # ValueError (as wasmtime.Memory did) instead of touching freed memory.

    def size(self) -> int:
        if self._ref is None:
            return 0
        return _memory_data_size(self._store._context(), self._ref)

    def read(self, ptr: int, length: int) -> bytes | None:
        if self._ref is None or ptr < 0 or length < 0:
            return None
        context = self._store._context()
        if ptr + length > _memory_data_size(context, self._ref):
            return None
        if not length:
            return b""
        # The base address is fetched per access: memory.grow may move it.
        return ctypes.string_at(_memory_data(context, self._ref) + ptr, length)

    def write(self, ptr: int, data: bytes) -> bool:
        if self._ref is None or ptr < 0:
            return False
        context = self._store._context()
        size = _memory_data_size(context, self._ref)
        if ptr + len(data) > size:
            return False
        if not data:
            # wasmtime.Memory.write, which this replaces, refuses an offset at the very end
            # even for nothing; the host call then fails as it always did.
            if ptr >= size:
                raise IndexError("index out of range")
            return True
        if type(data) is not bytes:
            data = bytes(data)
        ctypes.memmove(_memory_data(context, self._ref) + ptr, data, len(data))
        return True


def _link(
    compiled: CompiledModule,
    manifest: Manifest,
    store: wasmtime.Store,
    host: HostFunctions,
    on_error: Callable[[BaseException], None],
) -> list[wasmtime.Func]:
    """One Func per import, in import order; refuse what the manifest does not grant."""
    allowed = manifest.allowed_imports()
    funcs = []
    for imp in compiled.module.imports:
        where = f"{imp.module}.{imp.name}"
        if imp.module != abi.HOST_MODULE:
            raise errors.LinkError(
                f"module imports {where}: only host module {abi.HOST_MODULE!r} is offered"
            )
        spec = abi.HOSTCALLS.get(imp.name or "")
        if spec is None:
            raise errors.LinkError(f"module imports {where}: no such host function")
        if imp.name not in allowed:
            raise errors.LinkError(
                f"module imports {where}, which needs capability {spec.capability!r}; "
                f"the manifest does not declare it"
            )
        functype = wasmtime.FuncType(
            [_VALTYPES[t]() for t in spec.params], [_VALTYPES[t]() for t in spec.results]
        )
        expected = (list(spec.params), list(spec.results))
        if not isinstance(imp.type, wasmtime.FuncType) or _signature(imp.type) != expected:
            got = _signature(imp.type) if isinstance(imp.type, wasmtime.FuncType) else imp.type
            raise errors.LinkError(f"module imports {where} with type {got}, expected {expected}")
        funcs.append(wasmtime.Func(store, functype, _guarded(getattr(host, spec.name), on_error)))
    return funcs


def _signature(functype: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(t) for t in functype.params], [str(t) for t in functype.results]


def _export_caller(store: wasmtime.Store, extern: Any, trap: ctypes.c_void_p) -> Callable[..., Any]:
    """A callable for an export that behaves like `extern(store, *args)`, only faster.

    Functions whose parameters and result are i32/i64 (every export igor calls, in practice)
    go straight to wasmtime_func_call with the type and the value arrays prepared once;
    anything else keeps wasmtime-py's generic call.
    """
    if isinstance(extern, wasmtime.Func):
        functype = extern.type(store)
        params = [str(t) for t in functype.params]
        results = [str(t) for t in functype.results]
        if len(results) <= 1 and all(t in _FAST_KINDS for t in (*params, *results)):
            return _fast_call(store._context(), extern, params, results, trap)
    return lambda *args: extern(store, *args)


def _fast_call(
    context: Any, func: wasmtime.Func, params: list[str], results: list[str], trap: ctypes.c_void_p
) -> Callable[..., Any]:
    nparams = len(params)
    args = (_wffi.wasmtime_val_t * nparams)()
    slots = []
    for i, kind in enumerate(params):
        args[i].kind = _FAST_KINDS[kind]
        slots.append((args[i].of, kind))
    out = (_wffi.wasmtime_val_t * len(results))()
    call_args = (
        context,
        ctypes.byref(func._func),
        ctypes.byref(args),
        ctypes.c_size_t(nparams),
        ctypes.byref(out),
        ctypes.c_size_t(len(results)),
        ctypes.byref(trap),
    )
    result = out[0].of if results else None
    field = results[0] if results else ""

    def call(*values: Any) -> Any:
        if len(values) != nparams:
            # wasmtime-py's checks and messages, which the trap classification reports.
            amount = "many" if len(values) > nparams else "few"
            raise wasmtime.WasmtimeError(
                f"too {amount} parameters provided: given {len(values)}, expected {nparams}"
            )
        for (slot, kind), value in zip(slots, values, strict=True):
            if not isinstance(value, int):
                raise TypeError("expected an integer")
            setattr(slot, kind, value)
        error = _func_call(*call_args)
        if error or trap.value:
            _raise_failure(error, trap)
        return getattr(result, field) if result is not None else None

    return call


def _raise_failure(error: int | None, trap: ctypes.c_void_p) -> None:
    """Raise what wasmtime-py's Func.__call__ raises for a failed call.

    That is the host function's own exception if one caused the failure (wasmtime-py's
    trampoline keeps it in a module global), else the error or the trap.
    """
    trapped = None
    if trap.value:
        # Owned from here (freed with the Trap object); the slot is reused by the next call.
        trapped = wasmtime.Trap._from_ptr(
            ctypes.cast(trap.value, ctypes.POINTER(_wffi.wasm_trap_t))
        )
        trap.value = None
    if error:
        exc: BaseException = wasmtime.WasmtimeError._from_ptr(
            ctypes.cast(error, ctypes.POINTER(_wffi.wasmtime_error_t))
        )
    else:
        assert trapped is not None
        exc = trapped
    _wfunc.maybe_raise_last_exn()
    raise exc


def _guarded(fn: Callable[..., Any], on_error: Callable[[BaseException], None]) -> Callable:
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except BaseException as exc:
            # Remember the cause: wasmtime turns it into an anonymous trap.
            on_error(exc)
            raise

    return call


class AgentInstance:
    """One agent in its own store: init, resume, tick, capture state.

    After any trap the instance is unusable (its memory may be half-way through
    a tick); the caller restores from the last checkpoint into a new instance.
    """

    def __init__(
        self,
        engine: Engine,
        compiled: CompiledModule,
        manifest: Manifest,
        host_state: HostState,
        limits: Limits = Limits(),
    ):
        self.engine = engine
        self.compiled = compiled
        self.manifest = manifest
        self.limits = limits
        self.host_state = host_state
        self.failed: errors.AgentError | None = None
        self._host_error: BaseException | None = None
        self.store = wasmtime.Store(engine.wasmtime)
        self.store.set_limits(memory_size=manifest.max_memory_bytes, instances=1, memories=1)
        self.memory = _Memory(self.store)
        host = HostFunctions(host_state, self.memory)
        funcs = _link(compiled, manifest, self.store, host, self._remember_host_error)
        epochs = max(1, int(limits.deadline_ms / 1000 / EPOCH_INTERVAL_S))
        self._epochs = ctypes.c_uint64(epochs)
        fuel = limits.fuel_per_call
        self._default_fuel = ctypes.c_uint64(fuel) if type(fuel) is int else None
        self._fuel_left = ctypes.c_uint64(0)
        self._fuel_left_ref = ctypes.byref(self._fuel_left)
        self._trap = ctypes.c_void_p()
        self._arm(limits.fuel_per_call)
        try:
            instance = wasmtime.Instance(self.store, compiled.module, funcs)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise errors.ModuleError(f"instantiation failed: {_first_line(exc)}") from None
        exports = instance.exports(self.store)
        self.memory.bind(exports[abi.EXPORT_MEMORY])
        self._exports = {
            name: _export_caller(self.store, exports[name], self._trap)
            for name in (*abi.REQUIRED_EXPORTS, abi.EXPORT_MALLOC, abi.EXPORT_INITIALIZE)
            if name in exports
        }
        if abi.EXPORT_INITIALIZE in self._exports:
            self._call(abi.EXPORT_INITIALIZE)

    def _remember_host_error(self, exc: BaseException) -> None:
        self._host_error = exc

    # _arm and _remaining_fuel ask the store for its context each time, as wasmtime-py's
    # set_fuel and get_fuel did: a closed store (the node closes dropped agents' stores)
    # then raises ValueError instead of being used after it is freed. The export callers
    # hold the context, but run only between the two.

    def _arm(self, fuel: int) -> None:
        context = self.store._context()
        default = self._default_fuel
        if default is not None and type(fuel) is int and fuel == self.limits.fuel_per_call:
            error = _set_fuel(context, default)
            if error:
                raise wasmtime.WasmtimeError._from_ptr(
                    ctypes.cast(error, ctypes.POINTER(_wffi.wasmtime_error_t))
                )
        else:
            # Not the prepared budget: wasmtime-py converts it (and refuses it) as it always did.
            self.store.set_fuel(fuel)
        _set_epoch_deadline(context, self._epochs)

    def _remaining_fuel(self) -> int:
        error = _get_fuel(self.store._context(), self._fuel_left_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(error, ctypes.POINTER(_wffi.wasmtime_error_t))
            )
        return self._fuel_left.value

    def _call(self, name: str, *args: int, fuel: int | None = None) -> tuple[Any, int]:
        """Call an export under the fuel and deadline limits; returns (result, fuel used)."""
        if self.failed:
            raise errors.InstanceFailed(f"instance unusable after earlier failure: {self.failed}")
        budget = fuel if fuel is not None else self.limits.fuel_per_call
        self._arm(budget)
        self._host_error = None
        try:
            result = self._exports[name](*args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.failed = self._classify(name, exc)
            raise self.failed from None
        except ReplayMismatch:
            self.failed = errors.AgentTrap(f"{name}: replay departed from the record")
            raise
        return result, budget - self._remaining_fuel()

    def _classify(self, name: str, exc: BaseException) -> errors.AgentError:
        if isinstance(self._host_error, ReplayMismatch):
            raise self._host_error
        code = getattr(exc, "trap_code", None)
        if code == wasmtime.TrapCode.INTERRUPT:
            return errors.TickDeadlineExceeded(
                f"{name} exceeded its deadline of {self.limits.deadline_ms} ms and was interrupted"
            )
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return errors.FuelExhausted(f"{name} used more than {self.limits.fuel_per_call} fuel")
        if self._host_error is not None:
            return errors.AgentTrap(f"{name}: host call failed: {self._host_error!r}")
        if self.memory.size() + abi.WASM_PAGE > self.manifest.max_memory_bytes:
            return errors.MemoryLimitExceeded(
                f"{name} trapped at the memory limit of {self.manifest.max_memory_bytes} bytes "
                f"({_first_line(exc)})"
            )
        return errors.AgentTrap(f"{name} trapped: {_first_line(exc)}")

    def init(self) -> int:
        return self._call(abi.EXPORT_INIT)[1]

    def tick(self) -> tuple[bool, int]:
        """Run agent_tick; returns (more work, fuel used)."""
        result, fuel = self._call(abi.EXPORT_TICK)
        return bool(result) if self.compiled.tick_returns_hint else False, fuel

    def capture_state(self) -> tuple[bytes, int]:
        """The agent's serialized state and the fuel it took to produce it."""
        size, fuel1 = self._call(abi.EXPORT_CHECKPOINT)
        if size == 0:
            return b"", fuel1
        if size < 0 or size > self.limits.max_checkpoint_bytes:
            self.failed = errors.CheckpointTooLarge(
                f"agent_checkpoint returned {size & 0xFFFFFFFF} bytes; "
                f"the limit is {self.limits.max_checkpoint_bytes}"
            )
            raise self.failed
        ptr, fuel2 = self._call(abi.EXPORT_CHECKPOINT_PTR)
        state = self.memory.read(ptr, size)
        if state is None:
            self.failed = errors.BadStatePointer(
                f"agent_checkpoint_ptr returned {ptr:#x}: {size} bytes there are outside "
                f"linear memory ({self.memory.size()} bytes)"
            )
            raise self.failed
        return state, fuel1 + fuel2

    def resume(self, state: bytes) -> int:
        if not state:
            return self._call(abi.EXPORT_RESUME, 0, 0)[1]
        if abi.EXPORT_MALLOC not in self._exports:
            raise errors.ModuleError("module must export malloc to resume a non-empty state")
        ptr, fuel = self._call(abi.EXPORT_MALLOC, len(state))
        if ptr == 0 or not self.memory.write(ptr, state):
            self.failed = errors.BadStatePointer(
                f"malloc({len(state)}) returned {ptr:#x}: no room for the state (out of memory)"
            )
            raise self.failed
        return fuel + self._call(abi.EXPORT_RESUME, ptr, len(state))[1]
