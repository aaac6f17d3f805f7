"""Before any load: is the endpoint reachable, and does it serve the model asked for?"""

import json

import aiohttp

from classroom_probe.config import Config
from classroom_probe.errors import BadInput


def models_url(config: Config) -> str:
    base = config.base_url.rstrip("/")
    if config.api == "ollama":
        return base.removesuffix("/api") + "/api/tags"
    return (base if base.endswith("/v1") else base + "/v1") + "/models"


def model_names(api: str, obj: object) -> list[str]:
    """Names listed by `/v1/models` ({"data": [{"id"}]}) or Ollama's `/api/tags` ({"models": [{"name"}]})."""
    if not isinstance(obj, dict):
        return []
    key, name = ("models", "name") if api == "ollama" else ("data", "id")
    items = obj.get(key)
    if not isinstance(items, list):
        return []
    return [str(i[name]) for i in items if isinstance(i, dict) and name in i]


def is_served(api: str, model: str, names: list[str]) -> bool:
    if model in names:
        return True
    # Ollama lists "llama3:latest" for a model asked for as "llama3".
    return api == "ollama" and ":" not in model and f"{model}:latest" in names


async def check_model(session: aiohttp.ClientSession, config: Config, headers: dict[str, str]) -> list[str]:
    url = models_url(config)
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
        names = model_names(config.api, json.loads(body))
    except ValueError as exc:
        raise BadInput("--base-url", f"{url} did not return JSON") from exc
    if not is_served(config.api, config.model, names):
        listed = ", ".join(names) if names else "none"
        raise BadInput("--model", f"{config.model!r} is not served at {config.base_url}; available: {listed}")
    return names
