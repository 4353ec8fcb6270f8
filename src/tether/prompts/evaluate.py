"""``tether prompt eval``: render every case of a suite, ask a provider, score the answers, and
record it all as a Tether run (the prompt's content id, the commit, the provider, model and params
as params; pass rate with its Wilson interval, latency, tokens, cost and errors as metrics; one
row per case and repeat as the ``results.jsonl`` artifact).

Answers come through the response cache (``.tether/cache/responses``), keyed by the exact request
and the repeat index: re-evaluating unchanged cases is free, and ``--repeat K`` still asks K times.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import ConfigError
from tether.prompts import assertions, preflight, sandbox
from tether.prompts.providers import (
    OPENAI_URL,
    Provider,
    Request,
    Response,
    ResponseCache,
    ScriptedProvider,
    cached_complete,
    check_endpoint,
    provider_from_config,
)
from tether.prompts.stats import CaseOutcome, SuiteMetrics, suite_metrics
from tether.prompts.suite import Case, Suite
from tether.prompts.templates import Prompt, PromptError
from tether.workspace.repo import Workspace

SCRIPTED = "scripted"
Progress = Callable[[int, int], None]  # (done, total)


# a dated snapshot of a model, as OpenAI names them: gpt-4o-mini-2024-07-18, claude-x-20240620
_PRICE_KEYS = frozenset({"input_per_million", "output_per_million", "aliases"})
_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass
class CaseResult:
    case: str
    repeat: int
    answer: str
    passed: bool
    score: float | None
    checks: list[dict[str, Any]]
    latency_s: float
    tokens_in: int
    tokens_out: int
    cost: float | None
    error: str | None
    cached: bool

    def outcome(self) -> CaseOutcome:
        return CaseOutcome(
            self.case, self.passed, self.score, self.latency_s, self.cost, self.error is not None
        )


@dataclass
class EvalResult:
    prompt: str  # NAME@VERSION
    content_id: str
    suite: str
    suite_id: str
    provider: str
    model: str
    results: list[CaseResult]
    metrics: SuiteMetrics
    thresholds: dict[str, tuple[float, float, bool]] = field(default_factory=dict)
    run: str | None = None

    @property
    def verdict(self) -> str | None:
        """``pass`` when every suite threshold is met, ``fail`` when one is not, and no verdict
        when the suite sets none: figures alone say nothing about good enough."""
        if not self.thresholds:
            return None
        return "pass" if all(ok for _l, _v, ok in self.thresholds.values()) else "fail"

    @property
    def passed(self) -> bool:
        """What the command's exit says: every threshold met, or (no thresholds, so no verdict)
        every case answered without an error. Only a ``pass`` verdict is evidence."""
        if self.verdict is not None:
            return self.verdict == "pass"
        return self.metrics.cases > 0 and self.metrics.errors == 0

    def outcomes(self) -> list[CaseOutcome]:
        return [r.outcome() for r in self.results]


@dataclass(frozen=True)
class Trusted:
    """Provider settings from sources a pull request cannot change (``providers``: the
    ``prompts.providers`` table they give), and how to name them (``source``)."""

    providers: Mapping[str, Any]
    source: str


def provider_for(
    ws: Workspace, suite: Suite, name: str, trusted: Trusted | None = None
) -> Provider:
    """``scripted`` (the suite's own rules: a stand-in, for tests and demos) or a provider
    configured in tether.toml under ``[prompts.providers.NAME]``; with ``trusted``, one whose
    key is set is refused unless its endpoint is the trusted one (``check_endpoint``)."""
    if name == SCRIPTED:
        if not suite.scripted:
            raise PromptError(
                f"suite {suite.path} has no `scripted:` rules for the scripted provider"
            )
        return ScriptedProvider(name=SCRIPTED, rules=suite.scripted)
    configured = ws.config.get(f"prompts.providers.{name}")
    by_id = named_model(name)
    if not isinstance(configured, Mapping) and by_id is not None:
        # `openai:MODEL`, as the OpenAI SDK reads its environment: the endpoint and the key
        # come from where the job runs, never from a suite, so no endpoint check is needed
        base_url = os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        config = {"type": "openai", "model": by_id, "base_url": base_url}
        if os.environ.get("OPENAI_API_KEY"):  # a local server (Ollama, vLLM) may need none
            config["api_key_env"] = "OPENAI_API_KEY"
        return provider_from_config(name, config)
    if not isinstance(configured, Mapping):
        raise ConfigError(
            f"no provider {name!r}: add [prompts.providers.{name}] to tether.toml "
            '(type = "openai", base_url = ..., model = ..., api_key_env = ...)'
        )
    if trusted is not None:
        check_endpoint(name, configured, trusted.providers.get(name), trusted.source)
    return provider_from_config(name, configured)


def named_model(provider: str) -> str | None:
    """The model a provider id names (``openai:gpt-4o-mini``), else None."""
    kind, sep, model = provider.partition(":")
    return model if sep and kind == "openai" and model else None


def render_limits(ws: Workspace) -> sandbox.Limits:
    """``prompts.render_max_chars`` and ``prompts.render_timeout_s``."""
    return sandbox.Limits.from_settings(
        ws.config.get("prompts.render_max_chars"), ws.config.get("prompts.render_timeout_s")
    )


def price(ws: Workspace, model: str, tokens_in: int, tokens_out: int, *also: str) -> float | None:
    """Cost from ``[prompts.prices."MODEL"]`` (``input_per_million``, ``output_per_million``,
    optional ``aliases = [...]``). ``model`` is what was asked for; ``also`` what the endpoint
    says answered, often a dated snapshot (``gpt-4o-mini-2024-07-18``) of it: each is tried as
    given, by the entries' aliases, and without its date suffix."""
    table = ws.config.get("prompts.prices") or {}
    if not isinstance(table, Mapping):
        return None
    rows: dict[str, Mapping[str, Any]] = {}
    for key, row in table.items():
        unknown = sorted(set(row) - _PRICE_KEYS) if isinstance(row, Mapping) else []
        if unknown:  # a typo would silently price every call at 0
            raise ConfigError(
                f'[prompts.prices."{key}"]: unknown key {", ".join(unknown)} (a price takes '
                f"{', '.join(sorted(_PRICE_KEYS))})"
            )
        if isinstance(row, Mapping):
            for name in (key, *(row.get("aliases") or [])):
                rows.setdefault(str(name), row)
    names = [n for n in (model, *also) if n]
    found = next(
        (rows[n] for n in (*names, *(_DATED.sub("", n) for n in names)) if n in rows), None
    )
    if found is None:
        return None
    per_in = float(found.get("input_per_million", 0.0))
    per_out = float(found.get("output_per_million", 0.0))
    return (tokens_in * per_in + tokens_out * per_out) / 1e6


def evaluate(
    ws: Workspace,
    prompt: Prompt,
    suite: Suite,
    provider: Provider,
    *,
    repeat: int = 1,
    jobs: int = 8,
    record: bool = True,
    progress: Progress | None = None,
    judge: Provider | None = None,
    trusted: Trusted | None = None,
) -> EvalResult:
    """Evaluate ``prompt`` on ``suite`` with ``provider``; recorded as a run unless ``record`` is
    False. A case whose rendering fails is an error row, not an aborted eval. ``trusted``: the
    provider settings a pull request cannot change (``tether prompt ci``), which the embeddings
    provider must keep to."""
    if repeat < 1:
        raise PromptError("--repeat is at least 1")
    preflight.check(
        prompt,
        suite,
        root=ws.root,
        judge=judge is not None,
        embed=bool(ws.config.get("prompts.embeddings")),
    )
    # a model named in the provider id (-p openai:gpt-4o) is asked for explicitly; else the
    # version's own model, part of its content, so an eval tests what production sends; the
    # configured provider's model is for prompts that name none
    model = named_model(provider.name) or prompt.model or provider.model or ""
    requests: list[Request] = []
    rendered: list[tuple[Case, str | None, str]] = []  # case, render error, rendered text
    with sandbox.limits(render_limits(ws)):
        for case in suite.cases:
            try:
                messages = prompt.messages(**prompt.typed(case.vars, case.text_vars))
                text = "\n\n".join(m["content"] for m in messages)
                failure = None
            except PromptError as exc:
                messages, text, failure = [], "", str(exc)
            rendered.append((case, failure, text))
            for k in range(repeat):
                msgs = [(m["role"], m["content"]) for m in messages] or [("user", "")]
                requests.append(Request.build(model, msgs, prompt.params, repeat=k))
    embed = _embedder(ws, suite, trusted)  # refused, if it is, before anything is asked
    cache = ResponseCache(ws.dot / "cache" / "responses")
    done = [0]

    def tick(_i: int, _r: Response) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(requests))

    wanted = [i for i, _ in enumerate(requests) if rendered[i // repeat][1] is None]
    answers = cached_complete(
        provider, cache, [requests[i] for i in wanted], jobs=jobs, on_done=tick
    )
    by_index = dict(zip(wanted, answers, strict=True))
    judge_call = _judge_call(judge, cache) if judge is not None else None
    results = []
    for i in range(len(requests)):
        case, failure, text = rendered[i // repeat]
        response = by_index.get(i) or Response.failed(model, failure or "not asked")
        results.append(
            _score(ws, prompt, suite, case, text, response, i % repeat, judge_call, embed, model)
        )
    metrics = suite_metrics([r.outcome() for r in results])
    out = EvalResult(
        prompt.ref,
        prompt.content_id,
        suite.name,
        suite.content_id,
        provider.name,
        model,
        results,
        metrics,
        _thresholds(suite, metrics),
    )
    if record:
        out.run = _record(ws, prompt, suite, provider, out, repeat)
    return out


def _score(
    ws: Workspace,
    prompt: Prompt,
    suite: Suite,
    case: Case,
    text: str,
    response: Response,
    repeat: int,
    judge: Callable[[str], str] | None,
    embed: Callable[[list[str]], list[list[float]]] | None = None,
    requested: str = "",
) -> CaseResult:
    cost = price(ws, requested, response.tokens_in, response.tokens_out, response.model)
    checks: list[assertions.Check] = []
    weights: list[float] = []
    error = response.error
    if response.ok:
        ctx = assertions.Context(
            expected=case.expected,
            labels=[str(x) for x in prompt.output.get("labels") or []],
            rendered=text,
            latency_s=response.latency_s,
            cost=cost,
            root=ws.root,
            judge=judge,
            embed=embed,
            case_vars=case.vars,
        )
        specs = (*suite.asserts, *case.asserts)
        try:
            checks = [assertions.evaluate(spec, response.text, ctx) for spec in specs]
        except assertions.Unscorable as exc:
            checks, error = [], str(exc)
        weights = [float(spec.get("weight", 1)) for spec in specs][: len(checks)]
    scores = [c.score for c in checks if c.score is not None]
    return CaseResult(
        case=case.id,
        repeat=repeat,
        answer=response.text,
        passed=error is None and assertions.case_passed(checks, weights, case.threshold),
        score=sum(scores) / len(scores) if scores else None,
        checks=[c.to_dict() for c in checks],
        latency_s=response.latency_s,
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        cost=cost,
        error=error,
        cached=response.cached,
    )


def _embedder(
    ws: Workspace, suite: Suite, trusted: Trusted | None = None
) -> Callable[[list[str]], list[list[float]]] | None:
    """``[prompts] embeddings = "NAME"``: an OpenAI-compatible provider whose model embeds."""
    name = str(ws.config.get("prompts.embeddings") or "")
    if not name:
        return None
    provider = provider_for(ws, suite, name, trusted)
    embed = getattr(provider, "embed", None)
    if embed is None:
        raise ConfigError(f"provider {name} cannot embed: use an OpenAI-compatible endpoint")
    cached: dict[str, list[float]] = {}

    def vectors(texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in cached]
        if missing:
            cached.update(zip(missing, embed(missing), strict=True))
        return [cached[t] for t in texts]

    return vectors


def _judge_call(judge: Provider, cache: ResponseCache) -> Callable[[str], str]:
    def ask(text: str) -> str:
        (answer,) = cached_complete(judge, cache, [Request.build(judge.model, [("user", text)])])
        if not answer.ok:
            raise PromptError(f"the judge failed: {answer.error}")
        return answer.text

    return ask


def _thresholds(suite: Suite, m: SuiteMetrics) -> dict[str, tuple[float, float, bool]]:
    """threshold -> (limit, value, met)."""
    values = {
        "pass_rate": m.pass_rate,
        "latency_p95_s": m.latency_p95_s,
        "cost": m.cost_total,
        "errors": float(m.errors),
    }
    out = {}
    for key, limit in suite.thresholds.items():
        value = values[key]
        if value is None:
            out[key] = (limit, float("nan"), False)  # not measured: not met
        elif key == "pass_rate":
            out[key] = (limit, value, value >= limit)
        else:
            out[key] = (limit, value, value <= limit)
    return out


def _record(
    ws: Workspace, prompt: Prompt, suite: Suite, provider: Provider, out: EvalResult, repeat: int
) -> str:
    from tether.runs import live

    name, version = prompt.name, prompt.version
    tags = {
        "kind": "prompt-eval",
        "prompt": name,
        "prompt.version": version,
        "suite": suite.name,
        "provider": provider.name,
        "verdict": out.verdict or "none",
    }
    # queued for the index, read back by the next search: an eval does not load SQLAlchemy
    with live.start(
        ws, name=f"eval-{name}-{version}", experiment=f"prompt-{name}", tags=tags, index=False
    ) as run:
        run.log_params(
            {
                "prompt": prompt.ref,
                "prompt.content_id": prompt.content_id,
                "suite": str(suite.path),
                "suite.content_id": suite.content_id,
                "provider": provider.name,
                "provider.stand_in": "yes" if isinstance(provider, ScriptedProvider) else "no",
                "model": out.model,
                "repeat": repeat,
                **{f"sampling.{k}": v for k, v in prompt.params.items()},
            }
        )
        m = out.metrics
        numbers = {
            "pass_rate": m.pass_rate,
            "pass_rate_low": m.pass_low,
            "pass_rate_high": m.pass_high,
            "cases": m.cases,
            "errors": m.errors,
            "tokens_in": sum(r.tokens_in for r in out.results),
            "tokens_out": sum(r.tokens_out for r in out.results),
            "latency_p50_s": m.latency_p50_s,
            "latency_p95_s": m.latency_p95_s,
            "cost": m.cost_total,
            "score_mean": m.score_mean,
        }
        run.log_metrics({k: float(v) for k, v in numbers.items() if v is not None})
        with tempfile.TemporaryDirectory() as tmp:
            rows = Path(tmp) / "results.jsonl"
            rows.write_text("".join(json.dumps(asdict(r)) + "\n" for r in out.results))
            run.log_artifact(rows, "results.jsonl")
        return run.id


def load_results(data: bytes) -> list[CaseResult]:
    """The ``results.jsonl`` artifact of an eval run, as rows."""
    return [CaseResult(**json.loads(line)) for line in data.decode().splitlines() if line.strip()]
