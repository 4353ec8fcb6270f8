"""Providers against a real OpenAI-compatible HTTP server on loopback (``fakeserver``): parsing,
order, retries, faults recorded as errors, the response cache, rate limits and the API key."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.errors import ConfigError, UsageError
from tether.prompts import retry
from tether.prompts.fakeserver import Behaviour, FakeServer, Fault, serve
from tether.prompts.providers import (
    OpenAIProvider,
    Request,
    Response,
    ResponseCache,
    ScriptedProvider,
    cached_complete,
    provider_from_config,
)

SECRET = "sk-test-0123456789abcdefghijklmnop"


def ask(text: str, repeat: int = 0, **params: object) -> Request:
    return Request.build(
        "fake-model", [("system", "Answer in one word."), ("user", text)], params, repeat
    )


def fast(
    server: FakeServer,
    *,
    timeout: float = 2.0,
    max_retries: int = 2,
    rate_limit_per_s: float | None = None,
    api_key_env: str | None = None,
) -> OpenAIProvider:
    """A provider with test-sized timeouts and backoff."""
    return OpenAIProvider(
        server.base_url, api_key_env, timeout, max_retries, rate_limit_per_s, backoff_s=0.01
    )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with serve(latency_s=0.0) as running:
        yield running


def test_completion_and_usage_are_parsed(server: FakeServer) -> None:
    [response] = fast(server).complete_many([ask("a great film", temperature=0, max_tokens=5)])
    assert response == Response(
        "positive", response.tokens_in, 2, response.latency_s, "fake-model", None, False
    )
    assert response.ok and response.tokens_in == len("Answer in one word.a great film") // 4
    assert response.latency_s > 0
    body = server.seen[0].body
    assert body["temperature"] == 0 and body["max_tokens"] == 5 and body["model"] == "fake-model"
    assert body["messages"][-1] == {"role": "user", "content": "a great film"}


def test_order_is_kept_with_many_jobs() -> None:
    def slow_for_early_cases(text: str) -> str:
        time.sleep((40 - int(text)) * 0.002)  # the first requests finish last
        return f"answer {text}"

    with serve(latency_s=0.0, behaviour=Behaviour(answer=slow_for_early_cases)) as server:
        finished: list[int] = []
        requests = [ask(str(i)) for i in range(40)]
        responses = fast(server).complete_many(
            requests, jobs=8, on_done=lambda i, r: finished.append(i)
        )
    assert [r.text for r in responses] == [f"answer {i}" for i in range(40)]
    assert sorted(finished) == list(range(40)) and finished != sorted(finished)


def test_429_is_retried_after_the_servers_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "nap", waits.append)
    with serve(latency_s=0.0, behaviour=Behaviour(faults=(Fault("429", first=2),))) as server:
        provider = OpenAIProvider(server.base_url, max_retries=2, backoff_s=5.0)
        [response] = provider.complete_many([ask("good")])
        assert waits == [0.0, 0.0]  # Retry-After: 0 wins over the 5 s backoff
        assert server.requests == 3
    assert response.ok and response.text == "positive"


def test_a_client_error_is_not_retried(server: FakeServer) -> None:
    provider = OpenAIProvider(server.base_url.removesuffix("/v1") + "/nowhere", backoff_s=5.0)
    [response] = provider.complete_many([ask("good")])
    assert response.error is not None and response.error.startswith("HTTP 404: no route")


def test_persistent_500_is_an_error_after_the_retries_never_a_pass() -> None:
    with serve(latency_s=0.0, behaviour=Behaviour(faults=(Fault("500", when="broken"),))) as server:
        broken, fine = fast(server).complete_many([ask("broken and great"), ask("great")], jobs=2)
        assert server.requests == 4  # three attempts for the broken case, one for the other
    assert not broken.ok and broken.text == ""
    assert broken.error is not None and "HTTP 500" in broken.error and "3 attempts" in broken.error
    assert fine.ok and fine.text == "positive"


def test_a_hanging_server_times_out_into_an_error() -> None:
    behaviour = Behaviour(faults=(Fault("hang"),), hang_s=5.0)
    with serve(latency_s=0.0, behaviour=behaviour) as server:
        [response] = fast(server, timeout=0.2, max_retries=1).complete_many([ask("great")])
        assert server.requests == 2
    assert not response.ok and response.error is not None and "timed out" in response.error


@pytest.mark.parametrize(("first", "ok"), [(1, True), (None, False)])
def test_malformed_json_is_retried_then_an_error(first: int | None, ok: bool) -> None:
    with serve(latency_s=0.0, behaviour=Behaviour(faults=(Fault("malformed", first=first),))) as s:
        [response] = fast(s, max_retries=1).complete_many([ask("great")])
    assert response.ok is ok
    if not ok:
        assert response.error is not None and "malformed" in response.error


def test_a_cache_hit_makes_no_http_call(server: FakeServer, tmp_path: Path) -> None:
    provider, cache = fast(server), ResponseCache(tmp_path / "cache")
    requests = [ask("good"), ask("bad"), ask("good", repeat=1)]
    first = cached_complete(provider, cache, requests, jobs=3)
    assert server.requests == 3 and not any(r.cached for r in first)
    seen: list[int] = []
    again = cached_complete(provider, cache, requests, jobs=3, on_done=lambda i, r: seen.append(i))
    assert server.requests == 3
    assert all(r.cached for r in again) and sorted(seen) == [0, 1, 2]
    assert (
        [r.text for r in again] == [r.text for r in first] == ["positive", "negative", "positive"]
    )
    cached_complete(provider, cache, [*requests, ask("good", repeat=2)], jobs=3)
    assert server.requests == 4  # only the new repeat is asked


def test_errors_are_never_cached(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    with serve(latency_s=0.0, behaviour=Behaviour(faults=(Fault("500", first=3),))) as server:
        provider = fast(server)
        [failed] = cached_complete(provider, cache, [ask("great")])
        [answered] = cached_complete(provider, cache, [ask("great")])
        assert server.requests == 4
    assert not failed.ok and answered.ok and not answered.cached


def test_the_cache_is_a_folder_of_small_json_files(tmp_path: Path) -> None:
    cache, key = ResponseCache(tmp_path), ask("x").key()
    assert cache.get(key) is None
    cache.put(key, Response("yes", 3, 1, 0.5, "m"))
    digest = key.removeprefix("blake3:")
    path = tmp_path / digest[:2] / digest
    assert json.loads(path.read_text())["text"] == "yes"
    assert cache.get(key) == Response("yes", 3, 1, 0.5, "m", cached=True)
    path.write_text("{not json")
    assert cache.get(key) is None  # disposable: a broken entry is a miss
    with pytest.raises(UsageError):
        cache.get("../../etc/passwd")


def test_request_keys() -> None:
    base = ask("hello", temperature=0.5, seed=1)
    assert base.key() == ask("hello", seed=1, temperature=0.5).key()  # params order is irrelevant
    assert base.key().startswith("blake3:")
    different = [
        ask("hello", repeat=1, temperature=0.5, seed=1),
        ask("hello!", temperature=0.5, seed=1),
        ask("hello", temperature=0.6, seed=1),
        Request.build("other", base.messages, dict(base.params)),
    ]
    keys = {base.key(), base.key("openai:http://elsewhere"), *(r.key() for r in different)}
    assert len(keys) == 6
    with pytest.raises(UsageError, match="model"):
        ask("x", model="sneaky")


def test_the_rate_limit_is_shared_by_the_workers(server: FakeServer) -> None:
    start = time.monotonic()
    responses = fast(server, rate_limit_per_s=50).complete_many(
        [ask(str(i)) for i in range(20)], jobs=8
    )
    assert time.monotonic() - start >= 0.35 and all(r.ok for r in responses)


def test_the_api_key_is_a_bearer_header_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TETHER_TEST_KEY", SECRET)
    with serve(latency_s=0.0, behaviour=Behaviour(faults=(Fault("500", when="bad"),))) as server:
        provider = fast(server, api_key_env="TETHER_TEST_KEY", max_retries=0)
        responses = provider.complete_many([ask("great"), ask("bad")], jobs=2)
        assert {s.authorization for s in server.seen} == {f"Bearer {SECRET}"}
    assert responses[0].ok and not responses[1].ok
    for response in responses:
        assert SECRET not in json.dumps(response.to_dict())
    assert SECRET not in repr(vars(provider))
    monkeypatch.delenv("TETHER_TEST_KEY")
    with pytest.raises(UsageError, match="TETHER_TEST_KEY"):
        provider.complete_many([ask("great")])


def test_scripted_provider_answers_by_rules() -> None:
    provider = ScriptedProvider(
        [
            {"when": {"contains": ["great", "loved"]}, "answer": "positive"},
            {"when": {"regex": r"\bbad\b"}, "answer": "negative"},
            {"default": "neutral"},
        ]
    )
    requests = [ask("A GREAT film"), ask("bad acting"), ask("badly lit"), ask("I loved it")]
    responses = provider.complete_many(requests, jobs=2)
    assert [r.text for r in responses] == ["positive", "negative", "neutral", "positive"]
    assert responses[0].tokens_out == len("positive") // 4
    assert provider.complete_many(requests) == responses  # deterministic
    [unmatched] = ScriptedProvider([{"when": {"contains": "x"}, "answer": "y"}]).complete_many(
        [ask("nothing")]
    )
    assert not unmatched.ok
    with pytest.raises(ConfigError, match="rule 1"):
        ScriptedProvider([{"when": {"startswith": "a"}, "answer": "b"}])


def test_providers_from_config(server: FakeServer) -> None:
    openai = provider_from_config(
        "local", {"type": "openai", "base_url": server.base_url, "model": "m", "max_retries": 0}
    )
    assert openai.name == "local" and openai.model == "m"
    assert openai.complete_many([ask("great")])[0].text == "positive"
    scripted = provider_from_config("demo", {"type": "scripted", "rules": [{"default": "ok"}]})
    assert scripted.complete_many([ask("anything")])[0].text == "ok"
    with pytest.raises(ConfigError, match="unknown type"):
        provider_from_config("x", {"type": "gpt"})
    with pytest.raises(ConfigError, match="api_key_env"):
        provider_from_config("x", {"type": "openai", "api_key": SECRET})
    with pytest.raises(ConfigError, match="unknown keys"):
        provider_from_config("x", {"type": "scripted", "rules": [], "temperature": 1})


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is not None, reason="llama-cpp-python is installed"
)
def test_llama_cpp_without_the_package_says_how_to_install_it() -> None:
    with pytest.raises(UsageError, match="pip install llama-cpp-python"):
        provider_from_config("local", {"type": "llama-cpp", "model_path": "model.gguf"})


def test_backoff_grows_with_jitter_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "nap", waits.append)
    with serve(latency_s=0.0, behaviour=Behaviour(faults=(Fault("500"),))) as server:
        provider = OpenAIProvider(server.base_url, max_retries=4, backoff_s=1.0, max_backoff_s=3.0)
        [response] = provider.complete_many([ask("good")])
    assert len(waits) == 4 and all(0 <= w <= 3.0 for w in waits)
    assert response.error is not None and "after 5 attempts" in response.error
