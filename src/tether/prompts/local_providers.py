"""Providers that run here: ``scripted``, a stand-in for tests and the demo (answers come from
rules written in the suite; results it produces say nothing about any real model), and
``llama-cpp``, a local GGUF file through llama-cpp-python (optional, installed separately)."""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tether.errors import ConfigError, UsageError
from tether.hashing import hash_bytes
from tether.prompts.calls import OnDone, Request, Response, one_by_one, parse_completion, shifted


@dataclass(frozen=True)
class _Rule:
    answer: str
    contains: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        folded = text.casefold()
        if self.contains and not any(word in folded for word in self.contains):
            return False
        return self.regex is None or self.regex.search(text) is not None


class ScriptedProvider:
    """A stand-in for a model: no model runs, and scores it earns say nothing about any model.

    Rules from the suite are tried in order against the last user message; the first that matches
    gives the answer::

        [{"when": {"contains": "great"}, "answer": "positive"},     # any of a word or a list,
         {"when": {"regex": "\\bbad\\b"}, "answer": "negative"},   # ignoring case; re.search
         {"default": "neutral"}]                                   # matches anything

    A request no rule matches is an error. Tokens are estimated as characters // 4; ``latency_ms``
    simulates a model's delay per round of ``jobs`` requests. Deterministic.
    """

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]],
        *,
        name: str = "scripted",
        model: str = "scripted",
        latency_ms: float = 0.0,
    ) -> None:
        self.name, self.model = name, model
        self.rules = tuple(_compile_rule(name, i, rule) for i, rule in enumerate(rules))
        self.latency_s = latency_ms / 1000
        canonical = json.dumps(list(rules), sort_keys=True, separators=(",", ":"), default=str)
        self._fingerprint = "scripted:" + hash_bytes(canonical.encode())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def complete_many(
        self, requests: Sequence[Request], *, jobs: int = 1, on_done: OnDone | None = None
    ) -> list[Response]:
        if self.latency_s <= 0:
            return one_by_one(self.answer, requests, on_done)
        out: list[Response] = []
        for start in range(0, len(requests), max(1, jobs)):  # one delay per round of jobs
            time.sleep(self.latency_s)
            chunk = requests[start : start + max(1, jobs)]
            done = None if on_done is None else shifted(on_done, start)
            out += one_by_one(self.answer, chunk, done)
        return out

    def answer(self, request: Request) -> Response:
        text = request.last_user_message
        rule = next((r for r in self.rules if r.matches(text)), None)
        if rule is None:
            return Response.failed(
                request.model, "no scripted rule matched: add a {default: ...} rule last"
            )
        return Response(
            rule.answer,
            tokens_in=sum(len(content) for _, content in request.messages) // 4,
            tokens_out=len(rule.answer) // 4,
            latency_s=self.latency_s,
            model=request.model,
        )


def _compile_rule(provider: str, index: int, rule: Mapping[str, Any]) -> _Rule:
    where = f"provider {provider}, rule {index + 1}"
    if not isinstance(rule, Mapping):
        raise ConfigError(f"{where}: a rule is a mapping, not {rule!r}")
    if set(rule) == {"default"}:
        return _Rule(str(rule["default"]))
    when = rule.get("when")
    if set(rule) != {"when", "answer"} or not isinstance(when, Mapping) or not when:
        raise ConfigError(
            f"{where}: write {{when: {{contains: ...}} or {{regex: ...}}, answer: ...}} "
            f"or {{default: ...}} (got {dict(rule)!r})"
        )
    unknown = set(when) - {"contains", "regex"}
    if unknown:
        raise ConfigError(f"{where}: unknown condition {sorted(unknown)}: use contains or regex")
    words = when.get("contains", ())
    words = (words,) if isinstance(words, str) else tuple(str(w) for w in words)
    try:
        regex = re.compile(when["regex"]) if "regex" in when else None
    except re.error as exc:
        raise ConfigError(f"{where}: the regex does not compile ({exc}): fix it") from exc
    return _Rule(str(rule["answer"]), tuple(w.casefold() for w in words), regex)


# -- llama-cpp: a local GGUF file ----------------------------------------------------------------
class LlamaCppProvider:
    """A GGUF model run in this process by llama-cpp-python, one request at a time (``jobs`` is
    ignored: one model instance is not thread-safe). The model loads on first use."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str = "llama-cpp",
        model: str | None = None,
        n_ctx: int = 4096,
    ) -> None:
        try:
            self._module = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise UsageError(
                f"provider {name} runs a GGUF file through llama-cpp-python, which is not "
                "installed: pip install llama-cpp-python"
            ) from exc
        self.name, self.model_path, self.n_ctx = name, Path(model_path), n_ctx
        self.model = model or self.model_path.stem
        self._llm: Any = None

    @property
    def fingerprint(self) -> str:
        size = self.model_path.stat().st_size if self.model_path.exists() else 0
        return f"llama-cpp:{self.model_path.resolve()}:{size}"

    def complete_many(
        self, requests: Sequence[Request], *, jobs: int = 1, on_done: OnDone | None = None
    ) -> list[Response]:
        return one_by_one(self._complete_one, requests, on_done)

    def _complete_one(self, request: Request) -> Response:
        llm = self._load()
        body = request.body()
        start = time.perf_counter()
        try:
            doc = llm.create_chat_completion(messages=body["messages"], **dict(request.params))
            response = parse_completion(doc, request.model)
        except Exception as exc:  # one failing case is an error, never a pass
            return Response.failed(request.model, f"llama.cpp: {exc}", time.perf_counter() - start)
        return replace(response, latency_s=time.perf_counter() - start)

    def _load(self) -> Any:
        if self._llm is None:
            if not self.model_path.is_file():
                raise UsageError(f"provider {self.name}: no model file at {self.model_path}")
            self._llm = self._module.Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, verbose=False
            )
        return self._llm
