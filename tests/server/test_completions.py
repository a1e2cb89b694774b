# /v1/completions on the scripted tiny model (a raw prompt ending in ":" counts to ten), seeded
# sampling on the random model, and plain completions on the real Gemma 3 270M (GE_TEST_MODEL).
"""Text completions: text, streaming, echo, logprobs, token prompts, seeds, the real model."""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess

from conftest import gemma_bin

COUNT = " one two three four five six seven eight nine ten"


def test_completion_text_and_finish(chat_server):
    r = chat_server.client().completions.create(model="tiny", prompt="count:", max_tokens=20, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text == COUNT
    assert r.choices[0].finish_reason == "stop"  # <eos>
    assert r.usage.completion_tokens == 10
    r = chat_server.client().completions.create(model="tiny", prompt="count:", max_tokens=3, temperature=0)
    assert (r.choices[0].text, r.choices[0].finish_reason) == (" one two three", "length")


def test_default_max_tokens_is_16(chat_server):
    # OpenAI's default for this endpoint; the count stops by itself after 10.
    r = chat_server.client().completions.create(model="tiny", prompt="count:", temperature=0)
    assert r.usage.completion_tokens == 10


def test_completion_stream_equals_whole(chat_server):
    stream = chat_server.client().completions.create(model="tiny", prompt="count:", max_tokens=20, temperature=0,
                                                     stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == COUNT
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens == 10


def test_echo_logprobs_and_token_prompt(chat_server):
    client = chat_server.client()
    r = client.completions.create(model="tiny", prompt="count:", max_tokens=2, temperature=0, echo=True, logprobs=1)
    assert r.choices[0].text == "count: one two"
    lp = r.choices[0].logprobs
    assert lp.tokens == [" one", " two"]
    assert lp.text_offset == [6, 10]
    assert all(-0.01 < x <= 0 for x in lp.token_logprobs)
    assert [list(t) for t in lp.top_logprobs] == [[" one"], [" two"]]
    ids = chat_server.post("/tokenize", {"content": "count:", "add_special": True}).json()["tokens"]
    r = client.completions.create(model="tiny", prompt=ids, max_tokens=20, temperature=0)
    assert r.choices[0].text == COUNT


def test_seeded_sampling_is_reproducible(random_server):
    client = random_server.client()

    def sample(seed):
        r = client.completions.create(model="tiny", prompt="random:", max_tokens=24, temperature=1.0, seed=seed,
                                      top_p=1.0, extra_body={"top_k": 0})
        return r.choices[0].text

    a, b, c = sample(11), sample(11), sample(12)
    assert a == b
    assert a != c
    # Concurrently (different batch neighbours) the same seed gives the same text.
    with cf.ThreadPoolExecutor(4) as ex:
        assert list(ex.map(sample, [11, 11, 11, 11])) == [a] * 4


def test_real_model_completion_matches_gemma_run(real_server):
    client = real_server.client(timeout=300)
    prompt = "The capital of France is"
    r = client.completions.create(model="gemma3", prompt=prompt, max_tokens=8, temperature=0)
    text = r.choices[0].text
    assert r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length"
    # The single-sequence generation loop of `gemma run` is the reference.
    run = subprocess.run([str(gemma_bin()), "run", "-m", os.environ["GE_TEST_MODEL"], "-p", prompt, "--raw",
                          "--temp", "0", "-n", "8", "--no-stats", "-t", "2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == prompt + text + "\n"
    chunks = list(client.completions.create(model="gemma3", prompt=prompt, max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text


def test_real_model_parallel_streams_match_alone(real_server):
    client = real_server.client(timeout=300)
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "1, 2, 3, 4,"]

    def run(p):
        return client.completions.create(model="gemma3", prompt=p, max_tokens=6, temperature=0).choices[0].text

    alone = [run(p) for p in prompts]
    with cf.ThreadPoolExecutor(len(prompts)) as ex:
        assert list(ex.map(run, prompts)) == alone


def test_real_model_chat_stream_equals_whole(real_server):
    # Gemma 3's chat format (no system role: the system text joins the first user turn).
    client = real_server.client(timeout=300)
    kw = dict(model="gemma3", messages=[{"role": "system", "content": "Answer briefly."},
                                        {"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0)
    r = client.chat.completions.create(**kw)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens >= 1
    chunks = list(client.chat.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
