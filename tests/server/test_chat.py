# /v1/chat/completions through the official openai client on the scripted tiny model, whose
# greedy replies are fixed (scripts/make_tiny_chat_model.py): text, streaming, thinking, tools,
# stop strings, limits, logprobs and prompt-prefix reuse.
"""Chat completions: content, reasoning_content, tool_calls, stop, usage."""

from __future__ import annotations

import json

REPLY = "Hello from the tiny model."
THOUGHT = "I should say hello."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]},
    },
}
USER = [{"role": "user", "content": "Say hello."}]


def extra(obj, name):
    """A field outside the OpenAI schema (reasoning_content, timings)."""
    return (obj.model_extra or {}).get(name)


def collect(stream):
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(extra(c.choices[0].delta, "reasoning_content") or "" for c in chunks if c.choices)
    return chunks, content, reasoning


def test_plain_reply_usage_and_timings(chat_server):
    r = chat_server.client().chat.completions.create(model="tiny", messages=USER, temperature=0)
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert c.message.content == REPLY
    assert c.finish_reason == "stop"
    assert extra(c.message, "reasoning_content") is None
    assert r.object == "chat.completion"
    assert r.usage.completion_tokens == 5  # "Hello", " from", " the", " tiny", " model."
    assert r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    t = extra(r, "timings")
    assert t["predicted_n"] == 5 and t["prompt_n"] + t["cache_n"] == r.usage.prompt_tokens


def test_stream_equals_whole_reply(chat_server):
    stream = chat_server.client().chat.completions.create(
        model="tiny", messages=USER, temperature=0, stream=True, stream_options={"include_usage": True})
    chunks, content, reasoning = collect(stream)
    assert content == REPLY and reasoning == ""
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert all(c.id == chunks[0].id for c in chunks)


def test_thinking_goes_to_reasoning_content(chat_server):
    client = chat_server.client()
    kw = dict(model="tiny", messages=USER, temperature=0, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    r = client.chat.completions.create(**kw)
    msg = r.choices[0].message
    assert extra(msg, "reasoning_content") == THOUGHT
    assert msg.content == REPLY
    assert "<|channel>" not in msg.content and "thought" not in msg.content
    _, content, reasoning = collect(client.chat.completions.create(stream=True, **kw))
    assert (content, reasoning) == (REPLY, THOUGHT)


def test_tool_call_is_returned_as_tool_calls(chat_server):
    r = chat_server.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL], temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    assert c.message.content is None
    assert len(c.message.tool_calls) == 1
    call = c.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}


def test_tool_call_streamed(chat_server):
    stream = chat_server.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
        temperature=0, stream=True)
    chunks, content, _ = collect(stream)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert content == ""
    assert len(calls) == 1 and calls[0].index == 0
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "days": 3}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_result_turn(chat_server):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "days": 3})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"forecast": "sunny"})},
    ]
    r = chat_server.client().chat.completions.create(model="tiny", messages=messages, tools=[WEATHER_TOOL],
                                                     temperature=0)
    assert r.choices[0].message.content == "The weather in Paris is sunny."
    assert r.choices[0].finish_reason == "stop"


def test_tool_choice_none_and_required(chat_server):
    client = chat_server.client()
    q = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model="tiny", messages=q, tools=[WEATHER_TOOL], tool_choice="none",
                                       temperature=0)
    assert r.choices[0].message.content == REPLY and not r.choices[0].message.tool_calls
    # "required" opens the call in the prompt; with thinking on the model would otherwise think first.
    r = client.chat.completions.create(model="tiny", messages=q, tools=[WEATHER_TOOL], tool_choice="required",
                                       temperature=0, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert extra(r.choices[0].message, "reasoning_content") is None


def test_stop_strings(chat_server):
    client = chat_server.client()
    r = client.chat.completions.create(model="tiny", messages=USER, temperature=0, stop=["tiny"])
    assert r.choices[0].message.content == "Hello from the"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 4  # the token that completed the stop string counts
    # A stop string that starts inside one token and ends in the next; streamed.
    _, content, _ = collect(client.chat.completions.create(model="tiny", messages=USER, temperature=0,
                                                          stop=["lo fr", "never"], stream=True))
    assert content == "Hel"


def test_max_tokens_gives_length(chat_server):
    client = chat_server.client()
    r = client.chat.completions.create(model="tiny", messages=USER, temperature=0, max_tokens=2)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("Hello from", "length")
    r = client.chat.completions.create(model="tiny", messages=USER, temperature=0, max_completion_tokens=3)
    assert r.choices[0].message.content == "Hello from the" and r.usage.completion_tokens == 3


def test_logprobs(chat_server):
    r = chat_server.client().chat.completions.create(model="tiny", messages=USER, temperature=0, logprobs=True,
                                                     top_logprobs=2)
    lp = r.choices[0].logprobs.content
    assert [e.token for e in lp] == ["Hello", " from", " the", " tiny", " model."]
    for e in lp:
        assert -0.01 < e.logprob <= 0
        assert len(e.top_logprobs) == 2 and e.top_logprobs[0].token == e.token
        assert e.top_logprobs[1].logprob < e.logprob
        assert bytes(e.bytes).decode() == e.token


def test_sampling_fields_accepted(chat_server):
    r = chat_server.client().chat.completions.create(
        model="tiny", messages=USER, temperature=0.7, top_p=0.9, presence_penalty=0.5, frequency_penalty=0.5,
        seed=7, extra_body={"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1})
    # The scripted reply is far more likely than anything else, so sampling still follows it.
    assert r.choices[0].message.content == REPLY


def test_follow_up_turn_reuses_the_cached_prefix(chat_server):
    client = chat_server.client()
    first = [{"role": "system", "content": "You are a test."}, {"role": "user", "content": "A long first question " * 8}]
    r1 = client.chat.completions.create(model="tiny", messages=first, temperature=0)
    second = first + [{"role": "assistant", "content": r1.choices[0].message.content},
                      {"role": "user", "content": "And again?"}]
    r2 = client.chat.completions.create(model="tiny", messages=second, temperature=0)
    cached = r2.usage.prompt_tokens_details.cached_tokens
    # The first prompt ended in the empty thought block of thinking-off mode, which the re-rendered
    # history leaves out: everything before it is reused.
    block = chat_server.post("/tokenize", {"content": "<|channel>thought\n<channel|>"}).json()["count"]
    assert cached == r1.usage.prompt_tokens - block
    assert cached < r2.usage.prompt_tokens
    assert extra(r2, "timings")["cache_n"] == cached
