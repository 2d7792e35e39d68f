"""A planner over any OpenAI-compatible chat-completions server: vLLM, Ollama, the llama.cpp
server, ``transformers serve``.

Each request is ``POST {base_url}/chat/completions`` with the conversation (images as PNG data
URLs), greedy sampling (temperature 0) and ``response_format`` = ``{"type": "json_schema",
"json_schema": {"name", "schema", "strict": true}}``, so that a server with constrained decoding
can only answer with a plan over the scene's objects (or a verdict). A timeout, an HTTP 408, 429
or 5xx, an unreadable response and a rejected answer are retried (``ChatPlanner``); any other HTTP
error raises ``BrainError`` at once, since asking again would not help. Only the standard library
is used.

Example:
    planner = HttpPlanner(HttpPlannerConfig("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-7B"))
    subtasks = planner.plan("sort the cubes into the bins", observation)
"""

import json
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from kinema.policies.brain.chat_planner import ChatPlanner, Unanswered
from kinema.policies.brain.planner import BrainError
from kinema.policies.brain.prompts import Message, openai_messages

RETRIED_HTTP_STATUSES = frozenset({408, 429})
"""HTTP statuses below 500 that are worth another attempt (request timeout, rate limit)."""


@dataclass(frozen=True)
class HttpPlannerConfig:
    """Where the server is and how to ask it.

    Attributes:
        base_url: the API root, up to and including ``/v1`` (``http://127.0.0.1:8000/v1``).
        model: the model name the server knows.
        api_key: sent as a bearer token (local servers ignore it).
        timeout_s: how long one request may take, seconds.
        retries: attempts after the first, for each plan, check or replan.
        retry_delay_s: pause before retrying after a timeout or server error, seconds.
        max_tokens: the longest answer, in tokens.
        known_texts: the subtask texts the policy was trained on (None: any the skills phrase).
    """

    base_url: str
    model: str
    api_key: str = "none"
    timeout_s: float = 10.0
    retries: int = 2
    retry_delay_s: float = 0.2
    max_tokens: int = 512
    known_texts: Collection[str] | None = None


class HttpPlanner(ChatPlanner):
    """A ``Planner`` asking an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, config: HttpPlannerConfig):
        super().__init__(config.retries, config.retry_delay_s, config.known_texts)
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"

    def request_body(
        self, messages: list[Message], schema: dict[str, Any], name: str
    ) -> dict[str, Any]:
        """The JSON body of the chat-completions request for ``messages``."""
        return {
            "model": self.config.model,
            "messages": openai_messages(messages),
            "temperature": 0.0,
            "max_tokens": self.config.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            },
        }

    def complete(self, messages: list[Message], schema: dict[str, Any], name: str) -> str:
        body = json.dumps(self.request_body(messages, schema, name)).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.config.api_key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode(errors="replace")
            message = f"HTTP {error.code} from {self.url}: {detail}"
            if error.code >= 500 or error.code in RETRIED_HTTP_STATUSES:
                raise Unanswered(message) from error
            raise BrainError(message) from error
        except TimeoutError as error:
            raise Unanswered(self._timed_out()) from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise Unanswered(self._timed_out()) from error
            raise Unanswered(f"cannot reach {self.url}: {error.reason}") from error
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            shown = payload[:300].decode(errors="replace")
            raise Unanswered(f"malformed response from {self.url}: {shown!r}") from error
        if not isinstance(content, str):
            raise Unanswered(f"malformed response from {self.url}: content is {content!r}")
        return content

    def _timed_out(self) -> str:
        return f"no answer from {self.url} within {self.config.timeout_s} s (timeout)"
