"""Fetching agent modules: a ConfigMap key or an HTTP(S) URL, always digest-checked.

Modules are cached by digest, so a hundred agents of one module load it once
(and the engine compiles it once).
"""

from __future__ import annotations

import base64
import hashlib

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from igor.agentspec import ModuleRef

MAX_MODULE_BYTES = 256 * 1024 * 1024


class ModuleFetchError(Exception):
    """The module cannot be had; `fatal` when retrying cannot help."""

    def __init__(self, message: str, fatal: bool = False):
        self.fatal = fatal
        super().__init__(message)


class ModuleLoader:
    def __init__(self, api: client.ApiClient):
        self.core = client.CoreV1Api(api)
        self._cache: dict[bytes, bytes] = {}

    async def load(self, namespace: str, ref: ModuleRef) -> bytes:
        cached = self._cache.get(ref.digest)
        if cached is not None:
            return cached
        data = await (
            self._from_configmap(namespace, ref) if ref.config_map else self._from_url(ref)
        )
        digest = hashlib.sha256(data).digest()
        if digest != ref.digest:
            raise ModuleFetchError(
                f"module digest mismatch: spec.module.digest is {ref.digest_str}, the module "
                f"fetched from {self._where(namespace, ref)} is sha256:{digest.hex()}",
                fatal=True,
            )
        self._cache[ref.digest] = data
        return data

    @staticmethod
    def _where(namespace: str, ref: ModuleRef) -> str:
        if ref.config_map:
            return f"ConfigMap {namespace}/{ref.config_map[0]} key {ref.config_map[1]}"
        return str(ref.url)

    async def _from_configmap(self, namespace: str, ref: ModuleRef) -> bytes:
        assert ref.config_map
        name, key = ref.config_map
        try:
            cm = await self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            raise ModuleFetchError(
                f"cannot read ConfigMap {namespace}/{name}: {exc.status} {exc.reason}",
                fatal=False,
            ) from None
        if cm.binary_data and key in cm.binary_data:
            return base64.b64decode(cm.binary_data[key])
        if cm.data and key in cm.data:
            return cm.data[key].encode()
        raise ModuleFetchError(f"ConfigMap {namespace}/{name} has no key {key!r}")

    async def _from_url(self, ref: ModuleRef) -> bytes:
        timeout = aiohttp.ClientTimeout(total=120)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(str(ref.url)) as resp,
            ):
                if resp.status != 200:
                    raise ModuleFetchError(f"GET {ref.url}: HTTP {resp.status}")
                data = await resp.content.read(MAX_MODULE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ModuleFetchError(f"GET {ref.url}: {exc}") from None
        if len(data) > MAX_MODULE_BYTES:
            raise ModuleFetchError(
                f"GET {ref.url}: module larger than {MAX_MODULE_BYTES} bytes", True
            )
        return data
