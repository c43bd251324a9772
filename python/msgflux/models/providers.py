"""OpenAI-compatible providers: where each one's server is and where its key is.

A provider is the part of a model path before the first ``/``, as in
``"openai/gpt-4.1-mini"``. The base URL and the API key are read from the
environment at each request, so a model created at import time uses the
settings in force when it is called. Values passed in code win over both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from msgflux.models.errors import ModelConfigError

__all__ = ["PROVIDERS", "Provider", "split_model_path"]


@dataclass(frozen=True)
class Provider:
    """How to reach one provider's chat completions endpoint.

    Attributes:
        name: The prefix of model paths, such as ``"openai"``.
        default_base_url: The base URL used when no variable or argument sets
            one, or None if one must be given.
        base_url_env: The environment variable read for the base URL.
        api_key_env: The environment variable read for the API key, or None.
        api_key_required: Whether a request without a key is an error.
    """

    name: str
    default_base_url: Optional[str]
    base_url_env: Optional[str]
    api_key_env: Optional[str]
    api_key_required: bool

    def base_url(self, override: Optional[str]) -> str:
        """Return the base URL to use: ``override``, the variable, or the default.

        Raises:
            ModelConfigError: If none of them is set.
        """
        if override:
            return override
        if self.base_url_env:
            from_env = os.environ.get(self.base_url_env, "").strip()
            if from_env:
                return normalize_base_url(from_env, self.base_url_env)
        if self.default_base_url:
            return self.default_base_url
        hint = f"set {self.base_url_env} or " if self.base_url_env else ""
        raise ModelConfigError(
            f"missing base URL for provider {self.name!r}; {hint}pass base_url= "
            "to Model.chat_completion()"
        )

    def api_key(self, override: Optional[str], model_path: str) -> Optional[str]:
        """Return the API key to send: ``override`` or the variable.

        Raises:
            ModelConfigError: If the provider requires a key and none is set.
        """
        if override:
            return override
        if self.api_key_env:
            from_env = os.environ.get(self.api_key_env, "").strip()
            if from_env:
                return from_env
        if not self.api_key_required:
            return None
        raise ModelConfigError(
            f"missing API key for {model_path!r}; set the {self.api_key_env} "
            "environment variable or pass api_key= to Model.chat_completion()"
        )


def _ollama_base_url(host: str) -> str:
    # OLLAMA_HOST is the Ollama server's own setting, as host:port or a URL
    # without the /v1 suffix of its OpenAI-compatible API.
    if "://" not in host:
        host = f"http://{host}"
    return host.rstrip("/") + "/v1"


class _Ollama(Provider):
    def base_url(self, override: Optional[str]) -> str:
        if override:
            return override
        host = os.environ.get("OLLAMA_HOST", "").strip()
        if host:
            return _ollama_base_url(host)
        return super().base_url(None)


# Hosted services read the variables that their own SDKs and docs use. Local
# servers have no standard client-side variable, so VLLM_BASE_URL,
# LLAMACPP_BASE_URL and their key variables are names chosen by msgflux.
PROVIDERS: Dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider("openai", "https://api.openai.com/v1", "OPENAI_BASE_URL", "OPENAI_API_KEY", True),
        Provider("groq", "https://api.groq.com/openai/v1", "GROQ_BASE_URL", "GROQ_API_KEY", True),
        Provider(
            "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_BASE_URL",
            "OPENROUTER_API_KEY", True,
        ),
        Provider(
            "together", "https://api.together.xyz/v1", "TOGETHER_BASE_URL",
            "TOGETHER_API_KEY", True,
        ),
        _Ollama("ollama", "http://localhost:11434/v1", None, None, False),
        Provider("vllm", "http://localhost:8000/v1", "VLLM_BASE_URL", "VLLM_API_KEY", False),
        Provider(
            "llamacpp", "http://localhost:8080/v1", "LLAMACPP_BASE_URL",
            "LLAMACPP_API_KEY", False,
        ),
    )
}


def normalize_base_url(url: str, source: str) -> str:
    """Strip a trailing slash and check that ``url`` is an http(s) URL.

    Raises:
        ModelConfigError: If the URL has no http:// or https:// scheme.
    """
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ModelConfigError(
            f"invalid base URL {url!r} from {source}; it must start with http:// "
            "or https://, as in 'http://127.0.0.1:8000/v1'"
        )
    return url.rstrip("/")


def split_model_path(model_path: str, has_base_url: bool) -> Tuple[Provider, str]:
    """Split ``"provider/model"`` into the provider and the model name.

    The model name may contain more slashes (``"openrouter/meta-llama/x"``).
    An unknown provider is accepted when a base URL is given in code, so any
    OpenAI-compatible server can be named freely.

    Raises:
        TypeError: If ``model_path`` is not a string.
        ValueError: If it has no ``/``, an empty part, or an unknown provider
            and no base URL.
    """
    if not isinstance(model_path, str):
        raise TypeError(
            f"model path must be a string such as 'openai/gpt-4.1-mini', got "
            f"{type(model_path).__name__} {model_path!r}"
        )
    provider_name, _, model_name = model_path.partition("/")
    if not provider_name or not model_name:
        raise ValueError(
            f"invalid model path {model_path!r}; write it as 'provider/model', "
            "for example 'openai/gpt-4.1-mini'"
        )
    provider = PROVIDERS.get(provider_name)
    if provider is not None:
        return provider, model_name
    if has_base_url:
        return Provider(provider_name, None, None, None, False), model_name
    known = ", ".join(sorted(PROVIDERS))
    raise ValueError(
        f"unknown provider {provider_name!r} in {model_path!r}; use one of {known}, "
        "or pass base_url= to reach any OpenAI-compatible server"
    )
