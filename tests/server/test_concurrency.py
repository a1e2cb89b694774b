# Continuous batching seen from outside: 32 concurrent greedy streams produce exactly what each
# request produces alone; a full queue answers 429 with Retry-After; a client that disconnects
# (queued, streaming or not) has its request cancelled and its slot freed (C4); health and metrics.
"""Concurrency, admission, cancellation, observability endpoints."""

from __future__ import annotations

import concurrent.futures as cf
import json
import socket
import time

import pytest

from conftest import special_ids

PROMPTS = [f"Prompt number {i}: " + "lorem ipsum " * (i % 7) + chr(ord("a") + i % 26) for i in range(32)]


def test_32_parallel_greedy_streams_equal_alone(random_server):
    client = random_server.client()

    def alone(p):
        r = client.completions.create(model="tiny", prompt=p, max_tokens=24, temperature=0)
        return r.choices[0].text, r.usage.completion_tokens

    def streamed(p):
        chunks = list(client.completions.create(model="tiny", prompt=p, max_tokens=24, temperature=0, stream=True,
                                                stream_options={"include_usage": True}))
        return "".join(c.choices[0].text for c in chunks if c.choices), chunks[-1].usage.completion_tokens

    expected = [alone(p) for p in PROMPTS]
    steps_before = random_server.metric("gemma_batch_steps_total")
    tokens_before = random_server.metric("gemma_generation_tokens_total")
    with cf.ThreadPoolExecutor(len(PROMPTS)) as ex:
        got = list(ex.map(streamed, PROMPTS))
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"stream {i} differs from the same request alone"
    steps = random_server.metric("gemma_batch_steps_total") - steps_before
    tokens = random_server.metric("gemma_generation_tokens_total") - tokens_before
    assert tokens == sum(n for _, n in expected)
    # Requests shared forward passes: far fewer steps than generated tokens.
    assert steps < tokens / 2


def test_chat_streams_in_parallel(random_server):
    client = random_server.client()

    def ask(i):
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": PROMPTS[i]}],
                                           max_tokens=12, temperature=0)
        return r.choices[0].message.content, r.usage.completion_tokens

    alone = [ask(i) for i in range(8)]
    with cf.ThreadPoolExecutor(8) as ex:
        assert list(ex.map(ask, range(8))) == alone


def long_body(server, stream=True, max_tokens=30000):
    # End-of-generation tokens biased away so that the request runs until it is cancelled.
    bias = {str(i): -100 for i in special_ids(server).values()}
    return {"prompt": "a long story:", "max_tokens": max_tokens, "temperature": 1.0, "seed": 1, "stream": stream,
            "logit_bias": bias}


def raw_request(server, body) -> socket.socket:
    """Sends a request on a plain socket (closing it is an abrupt disconnect)."""
    s = socket.create_connection(("127.0.0.1", server.port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def busy(server) -> int:
    return server.get("/health").json()["slots_processing"]


def test_queue_full_gets_429_with_retry_after(one_slot_server):
    s = one_slot_server
    a = raw_request(s, long_body(s))
    assert a.recv(64).startswith(b"HTTP/1.1 200")  # streaming: headers once the request runs
    assert wait_for(lambda: busy(s) == 1)
    b = raw_request(s, long_body(s))  # waits in the queue
    assert wait_for(lambda: s.metric("gemma_queue_depth") == 1)
    r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_error"
    rejected = s.metric("gemma_requests_rejected_total")
    assert rejected >= 1
    cancelled = s.metric("gemma_requests_cancelled_total")
    a.close()
    b.close()
    assert wait_for(lambda: s.metric("gemma_requests_cancelled_total") == cancelled + 2)
    assert wait_for(lambda: busy(s) == 0 and s.metric("gemma_queue_depth") == 0)
    assert s.post("/v1/completions", {"prompt": "x", "max_tokens": 2}).status_code == 200


@pytest.mark.parametrize("stream", [True, False])
def test_c4_disconnect_cancels_within_a_step(one_slot_server, stream):
    s = one_slot_server
    before = s.metric("gemma_requests_cancelled_total")
    tokens0 = s.metric("gemma_generation_tokens_total")
    sock = raw_request(s, long_body(s, stream=stream))
    assert wait_for(lambda: s.metric("gemma_generation_tokens_total") > tokens0 + 20)
    t0 = time.time()
    sock.close()
    assert wait_for(lambda: s.metric("gemma_requests_cancelled_total") == before + 1, timeout=1.0)
    assert wait_for(lambda: busy(s) == 0, timeout=1.0)
    freed_after = time.time() - t0
    assert freed_after < 1.0
    # The request did not run to its 30000 tokens.
    assert s.metric("gemma_generation_tokens_total") - tokens0 < 30000


def test_c4_cancelling_a_queued_request_spares_the_running_one(one_slot_server):
    s = one_slot_server
    client = s.client()
    # Long enough to be seen running and to outlast the queued request: the tiny model with its prompt
    # cached decodes ~20,000 tokens/s, so 200 tokens could finish between two polls.
    n = 8000
    body = long_body(s, stream=False, max_tokens=n)
    with cf.ThreadPoolExecutor(1) as ex:
        running = ex.submit(lambda: client.completions.create(model="tiny", prompt=body["prompt"], max_tokens=n,
                                                              temperature=1.0, seed=1,
                                                              logit_bias=body["logit_bias"]))
        assert wait_for(lambda: busy(s) == 1)
        queued = raw_request(s, long_body(s))
        assert wait_for(lambda: s.metric("gemma_queue_depth") == 1)
        queued.close()
        r = running.result(timeout=120)
    assert r.usage.completion_tokens == n and r.choices[0].finish_reason == "length"
    assert wait_for(lambda: s.metric("gemma_queue_depth") == 0 and busy(s) == 0)


def test_health_models_metrics_tokenize(chat_server):
    h = chat_server.get("/health").json()
    assert h["status"] == "ok" and h["slots_idle"] + h["slots_processing"] == 4
    models = chat_server.client().models.list()
    assert [m.id for m in models.data] == ["gemma4-tiny-chat"]
    text = chat_server.get("/metrics").text
    for name in ["gemma_requests_submitted_total", "gemma_generation_tokens_total", "gemma_queue_depth",
                 "gemma_generation_tokens_per_second", "gemma_time_to_first_token_seconds_bucket{le=\"+Inf\"}",
                 "gemma_time_to_first_token_seconds_count", "gemma_http_requests_total{route=\"/health\",code=\"200\"}"]:
        assert name in text, name
    r = chat_server.post("/tokenize", {"content": "<|turn>hi", "with_pieces": True, "add_special": True}).json()
    assert [t["piece"] for t in r["tokens"]] == ["<bos>", "<|turn>", "h", "i"]
    ids = [t["id"] for t in r["tokens"]]
    assert chat_server.post("/detokenize", {"tokens": ids}).json()["content"] == "<bos><|turn>hi"
    r = chat_server.post("/tokenize", {"content": "é", "with_pieces": True}).json()
    assert r["tokens"][0]["piece"] == [0xC3]  # a byte token is not UTF-8 by itself
    assert chat_server.post("/tokenize", {"content": "<|turn>", "parse_special": False}).json()["count"] > 1


def test_health_is_503_while_loading(log_dir):
    import os
    from pathlib import Path

    from conftest import Server
    path = os.environ.get("GE_TEST_MODEL")
    if not path:
        pytest.skip("needs GE_TEST_MODEL (a model that takes a moment to load)")
    s = Server(Path(path), "--slots", "1", "--ctx", "256", log_dir=log_dir, name="loading", ready=False)
    try:
        # The port is announced before the weights are read and packed (hundreds of ms at least).
        r = s.get("/health")
        assert r.status_code == 503
        assert r.json()["error"]["type"] == "unavailable_error"
        assert s.post("/v1/completions", {"prompt": "x"}).status_code == 503
        s.wait_ready()
        assert s.get("/health").status_code == 200
    finally:
        s.stop()
