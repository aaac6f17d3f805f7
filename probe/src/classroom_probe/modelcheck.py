"""Before any load: is the endpoint reachable, does it serve the model asked for, and which version
of which server answers (where it tells)?"""

import json
from dataclasses import dataclass

import aiohttp

from classroom_probe.apis import REQUEST_FUNCS
from classroom_probe.config import Config
from classroom_probe.errors import BadInput


@dataclass(frozen=True, slots=True)
class ServerVersion:
    software: str | None
    version: str | None
    reason: str = ""


async def check_model(session: aiohttp.ClientSession, config: Config, headers: dict[str, str]) -> list[str]:
    func = REQUEST_FUNCS[config.api]
    url = func.models_url(config.base_url)
    timeout = aiohttp.ClientTimeout(total=config.connect_timeout + config.read_timeout,
                                    sock_connect=config.connect_timeout)
    try:
        async with session.get(url, headers=headers, timeout=timeout) as resp:
            body = await resp.read()
            status = resp.status
    except aiohttp.ConnectionTimeoutError as exc:
        raise BadInput("--base-url", f"cannot connect to {url} within {config.connect_timeout:g} s "
                                     f"(--connect-timeout): {exc}") from exc
    except aiohttp.ClientConnectorError as exc:
        why = "connection refused (nothing listens there)" if isinstance(exc.os_error, ConnectionRefusedError) \
            else str(exc)
        raise BadInput("--base-url", f"cannot connect to {url}: {why}") from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise BadInput("--base-url", f"{url} did not answer: {type(exc).__name__}: {exc}") from exc
    if status in (401, 403):
        raise BadInput("--api-key-file", f"{url} answered HTTP {status}: missing or wrong API key")
    if status != 200:
        raise BadInput("--base-url", f"{url} answered HTTP {status}; is this the {config.api} API?")
    try:
        names = func.model_names(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise BadInput("--base-url", f"{url} did not return JSON") from exc
    if not func.is_served(config.model, names):
        listed = ", ".join(names) if names else "none"
        raise BadInput("--model", f"{config.model!r} is not served at {config.base_url}; available: {listed}")
    return names


async def server_version(session: aiohttp.ClientSession, config: Config, headers: dict[str, str]) -> ServerVersion:
    """The server's own version endpoint (vLLM's /version, Ollama's /api/version); never raises."""
    func = REQUEST_FUNCS[config.api]
    url = func.version_url(config.base_url)
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return ServerVersion(None, None, f"{url} answered HTTP {resp.status}")
            obj = json.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError, RecursionError) as exc:
        return ServerVersion(None, None, f"{url}: {type(exc).__name__}")
    version = obj.get("version") if isinstance(obj, dict) else None
    if not isinstance(version, str) or not version:
        return ServerVersion(None, None, f"{url} gave no version")
    return ServerVersion(func.software, version[:80])
