# Error cases (reliability.md §5.C): C1 invalid requests -> 400 (413 for the body) with an
# OpenAI-shaped error and no crash; C2 context edges -> deterministic 200/400 with the counts;
# C7 partial UTF-8 in outputs -> every chunk valid JSON and UTF-8.
"""Validation, context limits and UTF-8 safety."""

from __future__ import annotations

import json

import pytest

from conftest import Response, request

CHAT = "/v1/chat/completions"
COMP = "/v1/completions"
MSG = [{"role": "user", "content": "hi"}]


def chat(**kw):
    return {"messages": MSG, **kw}


BAD_REQUESTS = [
    (CHAT, b"{not json"),
    (CHAT, b"[1, 2, 3]"),
    (CHAT, b'"a string"'),
    (CHAT, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}'),  # ill-formed UTF-8
    (CHAT, b'{"messages": [{"role": "user", "content": "\\ud800"}]}'),  # lone surrogate escape
    (CHAT, b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}'),
    (CHAT, b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}'),
    (CHAT, ("[" * 5000 + "]" * 5000).encode()),  # deep nesting
    (CHAT, {}),
    (CHAT, {"messages": "hi"}),
    (CHAT, {"messages": []}),
    (CHAT, {"messages": [{"content": "no role"}]}),
    (CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}),
    (CHAT, {"messages": [{"role": "user", "content": 5}]}),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
    (CHAT, {"messages": ["hi"]}),
    (CHAT, chat(model=5)),
    (CHAT, chat(stream="yes")),
    (CHAT, chat(stream_options=[])),
    (CHAT, chat(max_tokens=0)),
    (CHAT, chat(max_tokens=-5)),
    (CHAT, chat(max_tokens=2**40)),
    (CHAT, chat(max_tokens=1.5)),
    (CHAT, chat(max_completion_tokens="10")),
    (CHAT, chat(n=5)),
    (CHAT, chat(n=0)),
    (CHAT, chat(n=10**12)),
    (CHAT, chat(temperature="hot")),
    (CHAT, chat(temperature=-0.1)),
    (CHAT, chat(temperature=3)),
    (CHAT, chat(top_p=0)),
    (CHAT, chat(top_p=1.5)),
    (CHAT, chat(top_k=-1)),
    (CHAT, chat(top_k=2**31)),
    (CHAT, chat(min_p=2)),
    (CHAT, chat(presence_penalty=3)),
    (CHAT, chat(frequency_penalty=-2.5)),
    (CHAT, chat(repetition_penalty=0)),
    (CHAT, chat(seed=1.5)),
    (CHAT, chat(seed=2**70)),
    (CHAT, chat(seed="1")),
    (CHAT, chat(stop=5)),
    (CHAT, chat(stop=["a"] * 17)),
    (CHAT, chat(stop=[1])),
    (CHAT, chat(stop="x" * 513)),
    (CHAT, chat(logit_bias=[1])),
    (CHAT, chat(logit_bias={"-1": 1})),
    (CHAT, chat(logit_bias={"999999": 1})),
    (CHAT, chat(logit_bias={"abc": 1})),
    (CHAT, chat(logit_bias={"5": 101})),
    (CHAT, chat(logit_bias={"5": "x"})),
    (CHAT, chat(logprobs="yes")),
    (CHAT, chat(logprobs=True, top_logprobs=21)),
    (CHAT, chat(top_logprobs=2)),
    (CHAT, chat(tools={"type": "function"})),
    (CHAT, chat(tools=[{"type": 5}])),
    (CHAT, chat(tools=[{"type": "function", "function": {"name": ""}}])),
    (CHAT, chat(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}])),
    (CHAT, chat(tool_choice="sometimes")),
    (CHAT, chat(tool_choice="required")),  # no tools
    (CHAT, chat(tools=[{"type": "function", "function": {"name": "f"}}],
                tool_choice={"type": "function", "function": {"name": "g"}})),
    (CHAT, chat(response_format={"type": "json"})),
    (CHAT, chat(response_format={"type": "json_schema"})),
    (CHAT, chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string"}}})),
    (CHAT, chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "^a"}}}}})),
    (CHAT, chat(n=1000)),
    (CHAT, chat(n="2")),
    (CHAT, chat(ignore_eos="yes")),
    (CHAT, chat(chat_template_kwargs={"enable_thinking": "yes"})),
    (CHAT, {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"type": "function",
                                                                                "function": {"name": 3}}]}]}),
    (COMP, {}),
    (COMP, {"prompt": 5}),
    (COMP, {"prompt": [-1]}),
    (COMP, {"prompt": [10**9]}),
    (COMP, {"prompt": [1.5]}),
    (COMP, {"prompt": []}),
    (COMP, {"prompt": ["a", "b"]}),
    (COMP, {"prompt": "x", "suffix": "y"}),
    (COMP, {"prompt": "x", "best_of": 2}),
    (COMP, {"prompt": "x", "logprobs": 6}),
    (COMP, {"prompt": "x", "echo": 1}),
    ("/tokenize", {}),
    ("/tokenize", {"content": 5}),
    ("/tokenize", {"content": "x", "with_pieces": "yes"}),
    ("/detokenize", {"tokens": [-1]}),
    ("/detokenize", {"tokens": "1 2"}),
    ("/detokenize", {"tokens": [2**64]}),
]


def check_error_shape(r: Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
    assert "param" in err and "code" in err
    return err


@pytest.mark.parametrize("path,body", BAD_REQUESTS, ids=[f"{i}" for i in range(len(BAD_REQUESTS))])
def test_c1_invalid_requests_get_400(chat_server, path, body):
    r = chat_server.post(path, body if isinstance(body, bytes) else body)
    err = check_error_shape(r, 400)
    assert err["type"] == "invalid_request_error"


def test_c1_server_survives_and_counts(chat_server):
    assert chat_server.get("/health").status_code == 200
    r = chat_server.client().chat.completions.create(model="tiny", messages=MSG, temperature=0)
    assert r.choices[0].message.content


def test_c1_body_over_the_limit_gets_413(secure_server):
    headers = {"Authorization": "Bearer sekrit"}
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 70000}]})
    check_error_shape(secure_server.post(CHAT, big, headers=headers), 413)
    # Sent as a form (curl's default content type) it is still JSON to us, and still too big.
    r = request("POST", secure_server.url + CHAT, big,
                {**headers, "Content-Type": "application/x-www-form-urlencoded"})
    check_error_shape(r, 413)
    # Just under the limit, the same content type is fine.
    r = request("POST", secure_server.url + CHAT, json.dumps({"messages": MSG, "max_tokens": 1}),
                {**headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


def test_unknown_route_is_404(chat_server):
    check_error_shape(chat_server.get("/v2/nothing"), 404)


# ---- C2: context edges (slot context C = 512) ----

C = 512


def completion_tokens_prompt(server, n):
    bos = server.post("/tokenize", {"content": "", "add_special": True}).json()["tokens"]
    a = server.post("/tokenize", {"content": "a"}).json()["tokens"]
    return bos + a * (n - 1)


@pytest.mark.parametrize("n_prompt,max_tokens,status", [
    (C - 1, 1, 200),
    (C - 2, 2, 200),
    (C - 2, 3, 400),  # prompt + max_tokens = C + 1
    (C, 1, 400),
    (C + 1, 1, 400),
    (10 * C, 1, 400),
])
def test_c2_context_edges(chat_server, n_prompt, max_tokens, status):
    prompt = completion_tokens_prompt(chat_server, n_prompt)
    assert len(prompt) == n_prompt
    r = chat_server.post(COMP, {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    if status == 200:
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] == n_prompt
        assert r.json()["usage"]["completion_tokens"] <= max_tokens
    else:
        err = check_error_shape(r, 400)
        assert err["code"] == "context_length_exceeded"
        assert err["n_prompt_tokens"] == n_prompt and err["n_ctx"] == C


def test_c2_context_through_the_chat_template(chat_server):
    r = chat_server.post(CHAT, {"messages": [{"role": "user", "content": "a" * 600}]})
    err = check_error_shape(r, 400)
    assert err["code"] == "context_length_exceeded" and err["n_prompt_tokens"] > C and err["n_ctx"] == C
    # Without max_tokens a prompt that fits generates until the context is full at most.
    r = chat_server.post(CHAT, {"messages": [{"role": "user", "content": "a" * 400}], "temperature": 0})
    assert r.status_code == 200
    u = r.json()["usage"]
    assert u["total_tokens"] <= C


# ---- C7: UTF-8 in outputs ----

def sse_events(raw: bytes):
    """Every event must be strict UTF-8 JSON (or [DONE])."""
    text = raw.decode("utf-8", errors="strict")
    events = [e[len("data: "):] for e in text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_c7_generation_stopping_mid_codepoint(chat_server):
    # ";" leads to " price: 5" then the euro sign as three byte tokens.
    for max_tokens, want in [(3, " price: 5\ufffd"), (4, " price: 5\ufffd"), (5, " price: 5\u20ac"), (9, " price: 5\u20ac")]:
        r = chat_server.post(COMP, {"prompt": "x;", "max_tokens": max_tokens, "temperature": 0})
        assert r.status_code == 200
        assert r.json()["choices"][0]["text"] == want, max_tokens
        events = sse_events(chat_server.post(COMP, {"prompt": "x;", "max_tokens": max_tokens, "temperature": 0,
                                                    "stream": True}).content)
        assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == want
    # A stop string that is the multi-byte character itself.
    r = chat_server.post(COMP, {"prompt": "x;", "max_tokens": 9, "temperature": 0, "stop": ["\u20ac"]})
    assert r.json()["choices"][0]["text"] == " price: 5"


def test_c7_random_bytes_stream_as_valid_utf8(random_server):
    # The random model emits byte tokens freely: most of them do not form UTF-8.
    for seed in range(3):
        body = {"prompt": "bytes:", "max_tokens": 64, "temperature": 1.5, "top_k": 0, "top_p": 1.0, "seed": seed,
                "stream": True, "logprobs": 2}
        events = sse_events(random_server.post(COMP, body).content)
        text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
        whole = random_server.post(COMP, {**body, "stream": False}).json()["choices"][0]["text"]
        assert text == whole
        r = random_server.post(CHAT, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 64,
                                      "temperature": 1.5, "top_k": 0, "seed": seed})
        assert r.status_code == 200
        r.content.decode("utf-8", errors="strict")


def test_c1_mutated_bodies_never_get_5xx(chat_server):
    # Byte-level mutations of valid requests (seeded): every answer is a 2xx or a 4xx with the
    # OpenAI error shape, and the server stays up.
    import random

    rng = random.Random(1234)
    bases = [json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi é"}],
                         "max_tokens": 2, "temperature": 0.5, "stop": ["x"], "logprobs": True, "top_logprobs": 2,
                         "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}),
             json.dumps({"prompt": "count:", "max_tokens": 2, "logit_bias": {"5": 1}, "echo": True})]
    alphabet = b'{}[]":,0123456789-.eE\\u \xff\xc3\xa9nulltruefalse'
    for i in range(300):
        base = bases[i % 2].encode()
        b = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op, pos = rng.randrange(3), rng.randrange(len(b))
            if op == 0:
                b[pos] = rng.choice(alphabet)
            elif op == 1:
                b.insert(pos, rng.choice(alphabet))
            elif len(b) > 1:
                del b[pos]
        r = chat_server.post(CHAT if i % 2 == 0 else COMP, bytes(b))
        assert r.status_code < 500, (bytes(b), r.text)
        if r.status_code >= 400:
            check_error_shape(r, r.status_code)
    assert chat_server.get("/health").status_code == 200
