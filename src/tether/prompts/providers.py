"""Model providers for prompt evaluation, and the cache that makes re-asking unchanged cases free.

Three kinds, named by ``type`` in a suite's provider config (``provider_from_config``):

- ``openai``: any OpenAI-compatible chat-completions endpoint over HTTP (OpenAI, vLLM, Ollama,
  llama.cpp's server, LiteLLM). Concurrent, rate-limited, retried with backoff.
- ``scripted``: a stand-in for a model, for tests and the demo. No model runs: answers come from
  rules written in the suite. Results it produces say nothing about any real model.
- ``llama-cpp``: a local GGUF file through llama-cpp-python (optional, installed separately).

A provider never raises for one failing case: the case's ``Response`` carries ``error`` and counts
as a failure, never as a pass. It raises only for what stops every case (a missing API key).

Concurrency for ``openai`` is threads sharing one ``httpx.Client``. Measured against ``fakeserver``
answering in 50 ms, 1,000 requests at 32 jobs on 2 cores: threads 598 requests/s at 0.54 ms of
client CPU per request; ``httpx.AsyncClient`` with asyncio 564 requests/s at 1.0 ms (2.6 ms when
the server answers at once). Threads also work when the caller already runs an event loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from tether.errors import ConfigError
from tether.prompts.calls import (
    RESERVED_PARAMS as RESERVED_PARAMS,
)
from tether.prompts.calls import Message as Message
from tether.prompts.calls import OnDone as OnDone
from tether.prompts.calls import Provider as Provider
from tether.prompts.calls import Request as Request
from tether.prompts.calls import Response as Response
from tether.prompts.local_providers import LlamaCppProvider as LlamaCppProvider
from tether.prompts.local_providers import ScriptedProvider as ScriptedProvider
from tether.prompts.openai_provider import OPENAI_URL as OPENAI_URL
from tether.prompts.openai_provider import OpenAIProvider as OpenAIProvider
from tether.prompts.openai_provider import RateLimit as RateLimit
from tether.prompts.response_cache import ResponseCache as ResponseCache
from tether.prompts.response_cache import cached_complete as cached_complete

# -- from a suite's config -----------------------------------------------------------------------
_KINDS: dict[str, tuple[Callable[..., Provider], frozenset[str]]] = {
    "openai": (
        OpenAIProvider,
        frozenset(
            [
                "base_url",
                "api_key_env",
                "model",
                "timeout",
                "max_retries",
                "rate_limit_per_s",
                "headers",
            ]
        ),
    ),
    "scripted": (ScriptedProvider, frozenset({"rules", "model", "latency_ms"})),
    "llama-cpp": (LlamaCppProvider, frozenset({"model_path", "model", "n_ctx"})),
}


def check_endpoint(
    name: str,
    config: Mapping[str, Any],
    trusted: Any,
    trusted_from: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse an ``openai`` provider whose API-key variable is set while its endpoint (where
    requests go, and which variable's key they carry) is not the one the trusted config gives
    (``trusted``: the provider's table there, or None): content a pull request changed must not
    send the key to an address it chose."""
    environ = os.environ if environ is None else environ
    key_env = config.get("api_key_env")
    if config.get("type") != "openai" or not key_env or not environ.get(str(key_env)):
        return  # no key would be sent
    if isinstance(trusted, Mapping) and _endpoint(trusted) == _endpoint(config):
        return
    url = _endpoint(config)[1]
    raise ConfigError(
        f"provider {name} would send ${key_env} to {url}, which {trusted_from} does not give "
        f"it: the key was not sent. A pull request cannot choose where a key goes; set the "
        f"endpoint in .tether/config.toml or TETHER_PROMPTS__PROVIDERS__{name.upper()}__BASE_URL "
        "where this job runs, or merge the change to tether.toml first"
    )


def _endpoint(config: Mapping[str, Any]) -> tuple[Any, str, Any]:
    url = str(config.get("base_url") or OPENAI_URL).strip().rstrip("/")
    return config.get("type"), url, config.get("api_key_env")


def provider_from_config(name: str, config: Mapping[str, Any]) -> Provider:
    """A provider from a suite's config: ``{"type": "openai", "base_url": ..., "api_key_env":
    "OPENAI_API_KEY", "model": ...}``, ``{"type": "scripted", "rules": [...]}`` or
    ``{"type": "llama-cpp", "model_path": ...}``. The keys are the constructors' arguments."""
    kind = config.get("type")
    if kind not in _KINDS:
        raise ConfigError(
            f"provider {name}: unknown type {kind!r}: use one of {', '.join(sorted(_KINDS))}"
        )
    if "api_key" in config:
        raise ConfigError(
            f"provider {name}: never write an API key into config; put it in an environment "
            "variable and name that variable in api_key_env"
        )
    build, allowed = _KINDS[kind]
    settings = {k: v for k, v in config.items() if k != "type"}
    unknown = set(settings) - allowed
    if unknown:
        raise ConfigError(
            f"provider {name}: unknown keys {', '.join(sorted(unknown))}; "
            f"a {kind} provider takes {', '.join(sorted(allowed))}"
        )
    try:
        return build(name=name, **settings)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"provider {name}: {exc}: fix the provider's config") from exc
