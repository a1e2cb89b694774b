# n > 1 choices, response_format (json_object / json_schema constrained decoding), ignore_eos and
# `gemma serve --synthetic` (random weights of a published shape with another file's tokenizer).
"""Choices, structured output and the synthetic-weight server, through the official openai client."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import openai
import pytest

from conftest import Server, gemma_bin

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "height": {"type": "number"},
        "member": {"type": "boolean"},
        "note": {"type": "null"},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "home": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
                 "required": ["city"], "additionalProperties": False},
    },
    "required": ["name", "age", "home"],
    "additionalProperties": False,
}


def conforms(value, schema) -> bool:
    """The subset of JSON Schema the server supports, checked by hand (no jsonschema package)."""
    if "enum" in schema:
        return value in schema["enum"]
    t = schema.get("type")
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    if t == "array":
        return isinstance(value, list) and all(conforms(x, schema.get("items", {})) for x in value)
    if t == "object":
        if not isinstance(value, dict):
            return False
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", [])):
            return False
        for k, v in value.items():
            if k in props:
                if not conforms(v, props[k]):
                    return False
            elif schema.get("additionalProperties") is False:
                return False
        return True
    return True


def extra(kw: dict) -> dict:
    """Moves the server's own fields (not in the openai client's signature) into extra_body."""
    if "ignore_eos" in kw:
        kw["extra_body"] = {"ignore_eos": kw.pop("ignore_eos")}
    return kw


def ask(server: Server, **kw):
    kw.setdefault("messages", [{"role": "user", "content": "Describe a person as JSON."}])
    return server.client().chat.completions.create(model="m", **extra(kw))


def stream_choices(server: Server, **kw) -> tuple[dict[int, str], dict[int, str], dict | None]:
    """Texts and finish reasons per choice index, and the usage chunk, of a streamed chat request."""
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    usage = None
    for chunk in ask(server, stream=True, stream_options={"include_usage": True}, **kw):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                assert c.index not in finish, "two finish chunks for one choice"
                finish[c.index] = c.finish_reason
    return texts, finish, usage


# ---- n > 1 ----

def test_n_choices_have_indices_and_usage_counts_all(random_server):
    r = ask(random_server, n=3, max_tokens=8, temperature=1.0, seed=11, ignore_eos=True)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 3 * 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + 24
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) > 1, "choices with different seeds should differ"


def test_n_choices_are_reproducible_and_choice_i_uses_seed_plus_i(random_server):
    a = ask(random_server, n=3, max_tokens=10, temperature=1.0, seed=100, ignore_eos=True)
    b = ask(random_server, n=3, max_tokens=10, temperature=1.0, seed=100, ignore_eos=True)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    for i in range(3):
        one = ask(random_server, max_tokens=10, temperature=1.0, seed=100 + i, ignore_eos=True)
        assert one.choices[0].message.content == a.choices[i].message.content, i


def test_n_choices_streamed_chat_and_completions(random_server):
    texts, finish, usage = stream_choices(random_server, n=4, max_tokens=6, temperature=1.0, seed=5,
                                          extra_body={"ignore_eos": True})
    assert sorted(texts) == [0, 1, 2, 3] and sorted(finish) == [0, 1, 2, 3]
    assert set(finish.values()) == {"length"}
    assert usage.completion_tokens == 24
    whole = ask(random_server, n=4, max_tokens=6, temperature=1.0, seed=5, ignore_eos=True)
    assert [texts[i] for i in range(4)] == [c.message.content for c in whole.choices]

    client = random_server.client()
    r = client.completions.create(model="m", prompt="abc", n=2, max_tokens=5, temperature=1.0, seed=3,
                                  echo=True, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.text.startswith("abc") for c in r.choices)
    assert r.usage.completion_tokens == 10
    got: dict[int, str] = {}
    for chunk in client.completions.create(model="m", prompt="abc", n=2, max_tokens=5, temperature=1.0, seed=3,
                                           echo=True, stream=True, extra_body={"ignore_eos": True}):
        for c in chunk.choices:
            got[c.index] = got.get(c.index, "") + c.text
    assert got == {c.index: c.text for c in r.choices}


def test_n_beyond_the_slots_is_a_clear_400(one_slot_server):
    with pytest.raises(openai.BadRequestError) as e:
        ask(one_slot_server, n=2, max_tokens=2)
    assert "'n'" in str(e.value) and "[1, 1]" in str(e.value)


def test_ignore_eos_runs_to_max_tokens(random_server):
    eos = random_server.post("/tokenize", {"content": "<turn|>", "parse_special": True}).json()["tokens"][0]
    # A large bias makes the end-of-turn token the model's only choice: without ignore_eos the reply
    # stops at once, with it every one of max_tokens is generated.
    r = ask(random_server, max_tokens=5, logit_bias={str(eos): 100})
    assert r.usage.completion_tokens == 0 and r.choices[0].finish_reason == "stop"
    r = ask(random_server, max_tokens=5, logit_bias={str(eos): 100}, ignore_eos=True)
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"


# ---- response_format ----

def test_response_format_text_is_accepted(random_server):
    r = ask(random_server, max_tokens=4, response_format={"type": "text"})
    assert r.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("seed", range(4))
def test_json_object_output_parses(random_server, seed):
    # Random weights: nothing but the constraint makes this JSON. The budget rule closes the object
    # before max_tokens runs out.
    r = ask(random_server, max_tokens=40, temperature=1.0, seed=seed, response_format={"type": "json_object"})
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop", text
    value = json.loads(text)
    assert isinstance(value, dict), text


def test_json_schema_output_conforms(random_server):
    rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for seed in range(4):
        r = ask(random_server, max_tokens=120, temperature=1.0, seed=seed, response_format=rf)
        text = r.choices[0].message.content
        assert r.choices[0].finish_reason == "stop", text
        value = json.loads(text)
        assert conforms(value, PERSON), text


def test_json_schema_streamed_with_n(random_server):
    rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    texts, finish, usage = stream_choices(random_server, n=3, max_tokens=120, temperature=1.0, seed=9,
                                          response_format=rf)
    assert sorted(texts) == [0, 1, 2]
    for i in range(3):
        assert finish[i] == "stop", texts[i]
        assert conforms(json.loads(texts[i]), PERSON), texts[i]
    assert usage.completion_tokens > 0


def test_invalid_response_format_is_a_400_naming_the_problem(random_server):
    cases = [
        ({"type": "xml"}, "xml"),
        ({"type": "json_schema"}, "json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {
            "a": {"type": "string", "format": "email"}}}}}, "format"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"anyOf": [{"type": "object"}]}}}, "anyOf"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}, "root"),
    ]
    for rf, word in cases:
        with pytest.raises(openai.BadRequestError) as e:
            ask(random_server, max_tokens=4, response_format=rf)
        assert word in str(e.value), (rf, str(e.value))


def test_json_schema_on_the_real_model(real_server):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    r = ask(real_server, max_tokens=60, temperature=0,
            messages=[{"role": "user", "content": "Invent a person. Reply with JSON: name and age."}],
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop", text
    value = json.loads(text)
    assert conforms(value, schema) and value["name"], text


# ---- --synthetic ----

@pytest.fixture(scope="module")
def vocab_gguf(tmp_path_factory) -> Path:
    """A tokenizer-only GGUF with Gemma 3 270M's vocabulary size (`gemma synth --vocab-only`)."""
    out = tmp_path_factory.mktemp("vocab") / "gemma-3-270m-vocab.gguf"
    p = subprocess.run([str(gemma_bin()), "synth", "--preset", "gemma-3-270m", "--vocab-only", "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return out


def test_synthetic_server_completes_a_request(vocab_gguf, log_dir):
    s = Server(None, "--synthetic", "gemma-3-270m", "--quant", "q4_0", "--tokenizer", str(vocab_gguf),
               "--slots", "2", "--ctx", "256", log_dir=log_dir, name="synthetic", ready=False)
    try:
        s.wait_ready(timeout=300)
        models = s.get("/v1/models").json()
        assert models["data"][0]["id"] == "gemma-3-270m-synthetic"
        r = s.client().completions.create(model="m", prompt="hello", max_tokens=4, extra_body={"ignore_eos": True})
        assert r.usage.completion_tokens == 4 and r.choices[0].finish_reason == "length"
        r = ask(s, max_tokens=3, ignore_eos=True, n=2)
        assert r.usage.completion_tokens == 6
    finally:
        s.stop()


def test_synthetic_tokenizer_of_another_vocabulary_size_is_refused(tmp_path):
    tiny = Path(__file__).resolve().parent / "data" / "gemma4-tiny-random.gguf"
    p = subprocess.run([str(gemma_bin()), "serve", "--synthetic", "gemma-3-270m", "--tokenizer", str(tiny),
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "has 402 tokens but gemma-3-270m's vocabulary has 262144" in p.stderr, p.stderr
    p = subprocess.run([str(gemma_bin()), "serve", "--synthetic", "gemma-3-270m", "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--tokenizer" in p.stderr


def test_default_context_is_min_4096_and_the_model_maximum(log_dir):
    from conftest import RANDOM_MODEL
    s = Server(RANDOM_MODEL, "--slots", "1", log_dir=log_dir, name="default-ctx")
    try:
        meta = s.get("/v1/models").json()["data"][0]["meta"]
        assert meta["n_ctx"] == min(4096, meta["n_ctx_train"]) > 0, meta
        r = ask(s, max_tokens=2)
        assert r.usage.completion_tokens >= 0
    finally:
        s.stop()
