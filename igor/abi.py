"""The agent ABI, compatible with igor's: export names, host calls, capabilities, limits.

Everything a module author or a host implementation must agree on lives here, so
the host, the replay engine, the SDK header and the docs all read one table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

HOST_MODULE = "igor"

# Agent exports. agent_tick may return i32 ("more work" when non-zero) or nothing.
EXPORT_INIT = "agent_init"
EXPORT_TICK = "agent_tick"
EXPORT_CHECKPOINT = "agent_checkpoint"
EXPORT_CHECKPOINT_PTR = "agent_checkpoint_ptr"
EXPORT_RESUME = "agent_resume"
EXPORT_MALLOC = "malloc"
EXPORT_INITIALIZE = "_initialize"  # reactor init (TinyGo, wasi-libc); optional
EXPORT_MEMORY = "memory"
REQUIRED_EXPORTS = (
    EXPORT_INIT,
    EXPORT_TICK,
    EXPORT_CHECKPOINT,
    EXPORT_CHECKPOINT_PTR,
    EXPORT_RESUME,
)


class HostcallID(enum.IntEnum):
    """Identifiers recorded in the event log; numbering is igor's."""

    CLOCK_NOW = 1
    RAND_BYTES = 2
    LOG_EMIT = 3
    WALLET_BALANCE = 4
    WALLET_RECEIPT_COUNT = 5
    WALLET_RECEIPT = 6
    NODE_PRICE = 7
    HTTP_REQUEST = 8
    WALLET_PAY = 9


@dataclass(frozen=True)
class HostcallSpec:
    name: str
    id: HostcallID
    capability: str
    params: tuple[str, ...]  # wasm value types
    results: tuple[str, ...]


HOSTCALLS: dict[str, HostcallSpec] = {
    spec.name: spec
    for spec in (
        HostcallSpec("clock_now", HostcallID.CLOCK_NOW, "clock", (), ("i64",)),
        HostcallSpec("rand_bytes", HostcallID.RAND_BYTES, "rand", ("i32", "i32"), ("i32",)),
        HostcallSpec("log_emit", HostcallID.LOG_EMIT, "log", ("i32", "i32"), ()),
        HostcallSpec("wallet_balance", HostcallID.WALLET_BALANCE, "wallet", (), ("i64",)),
        HostcallSpec(
            "wallet_receipt_count", HostcallID.WALLET_RECEIPT_COUNT, "wallet", (), ("i32",)
        ),
        HostcallSpec(
            "wallet_receipt", HostcallID.WALLET_RECEIPT, "wallet", ("i32", "i32", "i32"), ("i32",)
        ),
        HostcallSpec("node_price", HostcallID.NODE_PRICE, "pricing", (), ("i64",)),
        HostcallSpec("http_request", HostcallID.HTTP_REQUEST, "http", ("i32",) * 10, ("i32",)),
    )
}

# Capabilities a node can offer, and the version each implements.
CAPABILITY_VERSIONS: dict[str, int] = {
    "clock": 1,
    "rand": 1,
    "log": 1,
    "wallet": 1,
    "pricing": 1,
    "http": 1,
}
# Declared by igor's manifests but not offered by this runtime yet.
KNOWN_UNIMPLEMENTED_CAPABILITIES = frozenset({"x402"})


def imports_for_capability(capability: str) -> tuple[str, ...]:
    return tuple(name for name, spec in HOSTCALLS.items() if spec.capability == capability)


# Return codes (igor's per-call meanings; the runtime never traps on a host-call error).
OK = 0
ERR_GENERIC = -1
ERR_INPUT_TOO_LARGE = -2  # also: capability not granted (igor's generic convention)
ERR_HOST_NOT_ALLOWED = -3
ERR_MEMORY_OOB = -4  # rand_bytes/wallet_receipt: write out of bounds; http: timeout
ERR_BUFFER_TOO_SMALL = -5

# Limits (igor's values).
RAND_MAX_BYTES = 64 * 1024 * 1024
LOG_MAX_BYTES = 1024 * 1024
HTTP_MAX_METHOD = 16
HTTP_MAX_URL = 8192
HTTP_MAX_HEADERS = 32768
HTTP_MAX_BODY = 1024 * 1024
HTTP_DEFAULT_TIMEOUT_MS = 10_000
HTTP_DEFAULT_MAX_RESPONSE = 1024 * 1024
DEFAULT_MAX_MEMORY_BYTES = 64 * 1024 * 1024
WASM_PAGE = 65536
