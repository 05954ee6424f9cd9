"""Where an OpenAI-compatible chat endpoint is and how hard to try it: :class:`HttpEndpointConfig`.

One typed config serves every HTTP caller of prefloop (the generation backend ``openai`` and
the LLM judges) and is embedded as-is in the ActiveRun spec (camelCase in YAML, unknown fields
refused, immutable). It holds *where the key is* (an environment variable name or a mounted
Secret file), never the key itself: :meth:`HttpEndpointConfig.read_api_key` reads it at call time
(so a rotated Secret is picked up by the next batch) into a :class:`pydantic.SecretStr`, whose
``repr`` and ``str`` print ``**********``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, model_validator

from prefloop.spec_base import SpecModel


class ApiKeyError(RuntimeError):
    """The configured API key cannot be read (unset variable, unreadable or empty file)."""


class HttpEndpointConfig(SpecModel):
    """An OpenAI-compatible `/v1/chat/completions` endpoint (a vLLM or TGI server, a hosted API)."""

    base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = "http://127.0.0.1:8000/v1"
    """The API root; requests go to `<baseUrl>/chat/completions` (e.g. `http://vllm:8000/v1`)."""
    model: Annotated[str, Field(min_length=1)] = "default"
    """The model name sent in each request body (what the server calls the model)."""
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Name of the environment variable holding the API key (read at call time, never logged);
    null with a null `apiKeyFile` sends no Authorization header (a local server)."""
    api_key_file: Annotated[str, Field(min_length=1)] | None = None
    """Path of a file holding the API key, e.g. a mounted Kubernetes Secret (read at call time,
    surrounding whitespace stripped)."""
    timeout_seconds: Annotated[float, Field(gt=0.0)] = 120.0
    """Time limit of one HTTP attempt, connect to last byte."""
    max_concurrency: Annotated[int, Field(ge=1)] = 16
    """Requests in flight to this endpoint at once (per batch call)."""
    max_attempts: Annotated[int, Field(ge=1)] = 5
    """Attempts per request, the first included, before it is recorded as failed."""
    retry_budget_seconds: Annotated[float, Field(gt=0.0)] = 300.0
    """Total time one request may take over all its attempts and pauses."""
    backoff_initial_seconds: Annotated[float, Field(gt=0.0)] = 0.5
    """Cap of the first pause; the cap doubles per attempt and the pause is drawn uniformly
    below it (full jitter). A longer `Retry-After` from the server is honoured."""
    backoff_max_seconds: Annotated[float, Field(gt=0.0)] = 30.0
    """Largest pause cap between two attempts."""
    extra_body: dict[str, Any] = {}  # noqa: RUF012 (pydantic copies it per instance)
    """Extra fields merged into every request body, e.g. vLLM's
    `chat_template_kwargs: {enable_thinking: false}`."""
    price_per_million_input_tokens: Annotated[float, Field(ge=0.0)] = 0.0
    """Price of one million prompt tokens, for the run's cost estimate (any currency, the same
    for every endpoint of a run; 0 for a server you do not pay per token)."""
    price_per_million_output_tokens: Annotated[float, Field(ge=0.0)] = 0.0
    """Price of one million completion tokens, for the run's cost estimate."""

    @model_validator(mode="after")
    def _one_key_source(self) -> HttpEndpointConfig:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("set at most one of apiKeyEnv and apiKeyFile")
        return self

    @property
    def chat_url(self) -> str:
        """The full URL of the chat-completions route."""
        return self.base_url.rstrip("/") + "/chat/completions"

    def read_api_key(self) -> SecretStr | None:
        """The API key, read now from the environment or the Secret file; None when unset.

        Why now: a key held in a config field could be printed with it, and a mounted Secret
        may be rotated while a long run goes on.

        Raises:
            ApiKeyError: the variable is unset or empty, or the file is unreadable or empty
                (the message names the variable or file, never a key).
        """
        if self.api_key_env is not None:
            value = os.environ.get(self.api_key_env, "").strip()
            if not value:
                raise ApiKeyError(
                    f"endpoint {self.base_url}: the API key variable {self.api_key_env} is unset "
                    "or empty"
                )
            return SecretStr(value)
        if self.api_key_file is not None:
            try:
                value = Path(self.api_key_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ApiKeyError(
                    f"endpoint {self.base_url}: cannot read the API key file "
                    f"{self.api_key_file} ({exc.strerror})"
                ) from None
            if not value:
                raise ApiKeyError(
                    f"endpoint {self.base_url}: the API key file {self.api_key_file} is empty"
                )
            return SecretStr(value)
        return None
