#!/usr/bin/env python3
"""Renders chat conversations with the published Gemma 3 / Gemma 4 Jinja templates (jinja2, set up
as transformers' apply_chat_template does) into tests/data/chat/chat_fixtures.json, the expected
bytes for the C++ render_chat test.

Usage: python3 scripts/gen_chat_fixtures.py [--check-transformers]
Needs only jinja2 >= 3.1; --check-transformers also renders every case through transformers'
render_jinja_template and fails if any byte differs.

Conversation inputs use the C++ Message shape ({role, content, reasoning, tool_calls:[{id, name,
arguments}], tool_name, tool_call_id}); to_template_message() below is the documented mapping
render_chat implements (empty strings are left out).
"""

import argparse
import json
import random
import sys
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parent.parent
SCALE = 1  # --scale: more random cases for a local stress run (the committed file uses 1)
DATA = ROOT / "tests" / "data" / "chat"
TEMPLATES = {
    "gemma3": DATA / "gemma3.jinja",
    "gemma4": DATA / "google-gemma-4-31B-it.jinja",
}


def make_env():
    # Same settings as transformers.utils.chat_template_utils._cached_compile_jinja_template.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env


def to_template_message(m):
    d = {"role": m["role"], "content": m.get("content", "")}
    if m.get("reasoning"):
        d["reasoning"] = m["reasoning"]
    if m.get("tool_calls"):
        calls = []
        for tc in m["tool_calls"]:
            call = {"type": "function", "function": {"name": tc["name"], "arguments": tc["arguments"]}}
            if tc.get("id"):
                call["id"] = tc["id"]
            calls.append(call)
        d["tool_calls"] = calls
    if m.get("tool_name"):
        d["name"] = m["tool_name"]
    if m.get("tool_call_id"):
        d["tool_call_id"] = m["tool_call_id"]
    return d


def render(template, case):
    kwargs = dict(
        messages=[to_template_message(m) for m in case["messages"]],
        tools=case["tools"] or None,
        add_generation_prompt=case["add_generation_prompt"],
        enable_thinking=case["enable_thinking"],
        bos_token="<bos>",
        eos_token="<eos>",
    )
    return template.render(**kwargs)


# ----------------------------------------------------------------------------------------------
# Building blocks

def msg(role, content="", **kw):
    m = {"role": role, "content": content}
    m.update(kw)
    return m


def call(name, arguments, id=""):
    return {"id": id, "name": name, "arguments": arguments}


def case(name, messages, tools=None, gen=True, think=False):
    return {"name": name, "messages": messages, "tools": tools or [],
            "add_generation_prompt": gen, "enable_thinking": think}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

NESTED_TOOL = {
    "type": "function",
    "function": {
        "name": "create_event",
        "description": "Create a calendar event with attendees.",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "Event title"},
                "when": {
                    "type": "object",
                    "description": "Start and end",
                    "properties": {
                        "start": {"type": "string", "description": "ISO 8601"},
                        "end": {"type": "string", "nullable": True},
                        "timezone": {"type": "object", "properties": {
                            "name": {"type": "string"}, "offset_minutes": {"type": "integer"}},
                            "required": ["name"]},
                    },
                    "required": ["start"],
                },
                "attendees": {
                    "type": "array",
                    "description": "People to invite",
                    "items": {
                        "type": "object",
                        "properties": {
                            "email": {"type": "string"},
                            "optional": {"type": "boolean", "description": "May skip"},
                        },
                        "required": ["email"],
                    },
                },
                "tags": {"type": "array", "items": {"type": "string", "enum": ["work", "home"]}},
                "priority": {"type": "integer", "description": "1 (high) to 5", "nullable": True},
                "ratio": {"type": "number"},
                "Zeta": {"type": "boolean"},
                "alpha": {"type": "string"},
            },
            "required": ["title", "when"],
        },
        "response": {"type": "object", "description": "The created event"},
    },
}

ODD_SCHEMA_TOOL = {
    "type": "function",
    "function": {
        "name": "odd_schema",
        "description": "Schema keywords the template does not know.",
        "parameters": {
            "type": "object",
            "properties": {
                "maybe": {"type": ["string", "null"], "description": "type given as a list"},
                "config": {"type": "object", "additionalProperties": {"type": "string"},
                           "title": "Config", "default": {}},
                "matrix": {"type": "array", "items": {"type": ["number", "null"], "minItems": 2,
                                                      "description": "row", "nullable": None}},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10,
                          "description": 42},
                "mode": {"type": "string", "enum": []},
                "empty_items": {"type": "array", "items": {}},
                "bare": {"description": "no type at all"},
                "obj_props_null": {"type": "object", "properties": None, "format": "x"},
                "ratio": {"type": "number", "description": "between 0.5 and 1e-05", "default": 0.25},
            },
        },
    },
}

NO_PARAMS_TOOL = {"type": "function", "function": {"name": "ping", "description": "Liveness check."}}
EMPTY_PARAMS_TOOL = {"type": "function", "function": {"name": "now", "description": "Time.",
                                                      "parameters": {}}}
PARAMS_NO_TYPE_TOOL = {"type": "function", "function": {
    "name": "lookup", "description": "No top-level type.",
    "parameters": {"properties": {"q": {"type": "string"}}, "required": ["q"]}}}
RESPONSE_STRING_TOOL = {"type": "function", "function": {
    "name": "echo", "description": "Echo text back.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    "response": {"type": "string", "description": "the same text"}}}

WEIRD_WS = " \t\u00a0\u3000\u2028\x1c\x85\u200a\n"
ARGS_ALL_TYPES = {
    "s": "Paris, \"France\" <b>",
    "i": 42,
    "neg": -7,
    "big": 12345678901234,
    "f": 1.5,
    "whole": 3.0,
    "tiny": 1e-05,
    "huge": 1e20,
    "mid": 123456.789,
    "t": True,
    "fa": False,
    "nothing": None,
    "obj": {"b": 1, "A": "x", "nested": {"deep": [1, "two", {"k": False}]}},
    "arr": [1, 2.25, "three", [], {}, None, True],
    "empty": "",
    "uni": "\u65e5\u672c\u8a9e \U0001F600",
}


def gemma4_cases():
    c = []
    c.append(case("user_only", [msg("user", "Hello there!")]))
    c.append(case("system_user", [msg("system", "You are terse."), msg("user", "Hi")]))
    c.append(case("developer_user", [msg("developer", "  Follow the rules.  "), msg("user", "Go")]))
    c.append(case("thinking_on_no_system", [msg("user", "Why is the sky blue?")], think=True))
    c.append(case("thinking_on_with_system", [msg("system", "Be careful."), msg("user", "2+2?")],
                  think=True))
    c.append(case("no_generation_prompt", [msg("user", "a"), msg("assistant", "b")], gen=False))
    c.append(case("multi_turn_strip_channel_in_content", [
        msg("user", "First question"),
        msg("assistant", "<|channel>thought\nlet me think<channel|>The answer is 4."),
        msg("user", "Second question"),
    ], think=True))
    c.append(case("multi_turn_reasoning_field_not_replayed", [
        msg("user", "Q1"),
        msg("assistant", "A1", reasoning="hidden chain of thought"),
        msg("user", "Q2"),
    ]))
    c.append(case("reasoning_with_tool_calls_after_last_user", [
        msg("user", "Weather in Paris?"),
        msg("assistant", "", reasoning="I should call the tool.",
            tool_calls=[call("get_weather", {"city": "Paris"}, id="call_1")]),
        msg("tool", "{\"temp\": 21}", tool_call_id="call_1"),
    ], tools=[WEATHER_TOOL], think=True))
    c.append(case("reasoning_with_tool_calls_before_last_user", [
        msg("user", "Weather in Paris?"),
        msg("assistant", "", reasoning="old thoughts",
            tool_calls=[call("get_weather", {"city": "Paris"}, id="c1")]),
        msg("tool", "sunny", tool_call_id="c1"),
        msg("assistant", "It is sunny."),
        msg("user", "Thanks! And Rome?"),
    ], tools=[WEATHER_TOOL], think=True))
    c.append(case("tool_declaration_simple", [msg("user", "Weather?")], tools=[WEATHER_TOOL]))
    c.append(case("tool_declaration_nested_schema", [msg("system", "Plan things."),
                                                     msg("user", "Book it")],
                  tools=[NESTED_TOOL, WEATHER_TOOL]))
    c.append(case("tool_declaration_odd_schema", [msg("user", "x")], tools=[ODD_SCHEMA_TOOL]))
    c.append(case("tool_declaration_no_and_empty_params", [msg("user", "x")],
                  tools=[NO_PARAMS_TOOL, EMPTY_PARAMS_TOOL, PARAMS_NO_TYPE_TOOL,
                         RESPONSE_STRING_TOOL]))
    c.append(case("tools_system_thinking", [msg("system", "sys"), msg("user", "u")],
                  tools=[WEATHER_TOOL], think=True))
    c.append(case("tool_call_all_argument_types", [
        msg("user", "do it"),
        msg("assistant", "", tool_calls=[call("create_event", ARGS_ALL_TYPES, id="x")]),
        msg("tool", "ok", tool_call_id="x"),
    ], tools=[NESTED_TOOL]))
    c.append(case("two_calls_two_responses_then_answer", [
        msg("user", "Paris and Rome?"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Paris"}, id="a"),
                                         call("get_weather", {"city": "Rome", "unit": "celsius"},
                                              id="b")]),
        msg("tool", "18C", tool_call_id="a"),
        msg("tool", "25C", tool_call_id="b"),
        msg("assistant", "Paris 18C, Rome 25C."),
        msg("user", "thanks"),
    ], tools=[WEATHER_TOOL]))
    c.append(case("tool_call_without_response", [
        msg("user", "Paris?"),
        msg("assistant", "Checking.", tool_calls=[call("get_weather", {"city": "Paris"})]),
    ], tools=[WEATHER_TOOL]))
    c.append(case("tool_response_then_generation_prompt", [
        msg("user", "Paris?"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Paris"}, id="p")]),
        msg("tool", "rainy", tool_call_id="p"),
    ], tools=[WEATHER_TOOL]))
    c.append(case("tool_response_with_assistant_content", [
        msg("user", "Paris?"),
        msg("assistant", "Let me look.", tool_calls=[call("get_weather", {"city": "Paris"}, id="p")]),
        msg("tool", "rainy", tool_call_id="p"),
    ], tools=[WEATHER_TOOL]))
    c.append(case("continuation_after_tool_response", [
        msg("user", "Paris?"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Paris"}, id="p")]),
        msg("tool", "rainy", tool_call_id="p"),
        msg("assistant", "It is rainy in Paris."),
        msg("user", "ok"),
    ], tools=[WEATHER_TOOL]))
    c.append(case("consecutive_assistant_messages", [
        msg("user", "tell me"),
        msg("assistant", "Part one."),
        msg("assistant", "Part two."),
        msg("user", "more"),
    ]))
    c.append(case("tool_name_only_no_ids", [
        msg("user", "ping"),
        msg("assistant", "", tool_calls=[call("ping", {})]),
        msg("tool", "pong", tool_name="ping"),
    ], tools=[NO_PARAMS_TOOL]))
    c.append(case("tool_name_overridden_by_matching_id", [
        msg("user", "w"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Oslo"}, id="id7")]),
        msg("tool", "cold", tool_name="wrong_name", tool_call_id="id7"),
    ], tools=[WEATHER_TOOL]))
    c.append(case("empty_ids_match", [
        msg("user", "w"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Oslo"})]),
        msg("tool", "cold"),
    ], tools=[WEATHER_TOOL]))
    c.append(case("orphan_tool_message_dropped", [
        msg("user", "hi"),
        msg("tool", "nobody asked", tool_name="x"),
        msg("assistant", "hello"),
        msg("user", "bye"),
    ]))
    c.append(case("string_and_non_object_arguments", [
        msg("user", "go"),
        msg("assistant", "", tool_calls=[call("raw", "city:<|\"|>Paris<|\"|>", id="r"),
                                         call("num", 5, id="n"), call("lst", [1, 2], id="l")]),
        msg("tool", "done", tool_call_id="r"),
    ]))
    c.append(case("unicode", [
        msg("system", "Réponds en français 🇫🇷"),
        msg("user", "日本語で答えて。\u05e9\u05dc\u05d5\u05dd e\u0301 \U0001F468\u200d\U0001F469\u200d\U0001F467"),
        msg("assistant", "はい、わかりました。"),
        msg("user", "Ελληνικά; Кириллица?"),
    ]))
    c.append(case("whitespace_trimmed", [
        msg("system", WEIRD_WS + "system text" + WEIRD_WS),
        msg("user", WEIRD_WS + "user text\u200b" + WEIRD_WS),
        msg("assistant", "\n\n  model text \t\n"),
        msg("user", "\r\n\x0b\x0cend\x1d\x1e\x1f"),
    ]))
    c.append(case("empty_contents", [msg("system", ""), msg("user", ""), msg("assistant", ""),
                                     msg("user", "   ")]))
    c.append(case("system_only", [msg("system", "Only a system prompt.")]))
    c.append(case("system_in_the_middle", [msg("user", "a"), msg("system", " mid "),
                                           msg("developer", "dev"), msg("user", "b")]))
    c.append(case("markers_in_user_content_kept", [
        msg("user", "Explain <|channel>this<channel|> and <turn|> literally"),
    ]))
    c.append(case("assistant_multiple_channels", [
        msg("user", "u"),
        msg("assistant", "  <|channel>a<channel|>keep<|channel>b<channel|> this <channel|> too "),
        msg("user", "u2"),
    ]))
    c.append(case("tool_response_body_special_chars", [
        msg("user", "json"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Z\u00fcrich"}, id="q")]),
        msg("tool", "  {\"temp\": 3, \"note\": \"<|\\\"|> odd\"}\n", tool_call_id="q"),
        msg("assistant", "Cold."),
    ], tools=[WEATHER_TOOL]))
    c.append(case("assistant_reasoning_without_tool_calls_after_last_user", [
        msg("user", "u"),
        msg("assistant", "answer", reasoning="thoughts that must not be replayed"),
    ], think=True))
    c.append(case("tool_first_message", [msg("tool", "x", tool_name="t"), msg("user", "hi")]))
    c.append(case("parallel_calls_partial_responses_then_more_calls", [
        msg("user", "plan"),
        msg("assistant", "", reasoning="step 1",
            tool_calls=[call("get_weather", {"city": "A"}, id="1"),
                        call("get_weather", {"city": "B"}, id="2")]),
        msg("tool", "a-ok", tool_call_id="1"),
        msg("assistant", "", reasoning="step 2",
            tool_calls=[call("get_weather", {"city": "C"}, id="3")]),
        msg("tool", "c-ok", tool_call_id="3"),
    ], tools=[WEATHER_TOOL], think=True))
    c.append(case("mixed_case_and_unicode_keys", [
        msg("user", "x"),
        msg("assistant", "", tool_calls=[call("f", {"b": 1, "B2": 2, "a": {"Z": 1, "y": 2},
                                                    "_u": 0, "\u00e9t\u00e9": "summer",
                                                    "1num": 1})]),
    ]))
    c.append(case("error_tool_result_without_name", [
        msg("user", "w"),
        msg("assistant", "", tool_calls=[call("get_weather", {"city": "Oslo"}, id="id1")]),
        msg("tool", "cold", tool_call_id="other"),
    ], tools=[WEATHER_TOOL]))
    def schema_tool(params):
        return [{"type": "function", "function": {"name": "f", "description": "d",
                                                  "parameters": params}}]
    c.append(case("error_properties_not_a_mapping", [msg("user", "x")],
                  tools=schema_tool({"type": "object", "properties": ["a", "b"]})))
    c.append(case("error_items_required_not_iterable", [msg("user", "x")],
                  tools=schema_tool({"type": "object", "properties": {
                      "a": {"type": "array", "items": {"type": "string", "required": 5}}}})))
    c.append(case("error_items_type_not_iterable", [msg("user", "x")],
                  tools=schema_tool({"type": "object", "properties": {
                      "a": {"type": "array", "items": {"type": True}}}})))
    c.append(case("items_type_falsy_maps_to_nothing", [msg("user", "x")],
                  tools=schema_tool({"type": "object", "properties": {
                      "a": {"type": "array", "items": {"type": 0, "description": ""}}}})))
    c.extend(random_cases("gemma4", 24 * SCALE, seed=4))
    c.extend(random_schema_cases(60 * SCALE, seed=44))
    return c


def gemma3_cases():
    c = []
    c.append(case("user_only", [msg("user", "Hello")]))
    c.append(case("system_user", [msg("system", "Be brief."), msg("user", "Hi")]))
    c.append(case("system_untrimmed_user_trimmed", [msg("system", "  sys  \n"),
                                                    msg("user", "\n  user  \t")]))
    c.append(case("multi_turn", [msg("user", "a"), msg("assistant", "b"), msg("user", "c"),
                                 msg("assistant", "d"), msg("user", "e")]))
    c.append(case("no_generation_prompt", [msg("user", "a"), msg("assistant", "b")], gen=False))
    c.append(case("ends_with_assistant", [msg("user", "a"), msg("assistant", "b")]))
    c.append(case("system_only", [msg("system", "lonely system")]))
    c.append(case("unicode", [msg("system", "Системный"),
                              msg("user", "你好 \U0001F44B e\u0301"), msg("assistant", "مرحبا")]))
    c.append(case("whitespace_variants", [msg("user", WEIRD_WS + "x" + WEIRD_WS),
                                          msg("assistant", "\u200b y \u200b"),
                                          msg("user", "\x1c\x1d z\x1e\x1f")]))
    c.append(case("empty_contents", [msg("system", ""), msg("user", ""), msg("assistant", "")]))
    c.append(case("thinking_flag_ignored", [msg("user", "q")], think=True))
    c.append(case("reasoning_field_ignored", [msg("user", "q"),
                                              msg("assistant", "a", reasoning="r"),
                                              msg("user", "q2")]))
    c.append(case("markers_in_content", [msg("user", "<start_of_turn>user\nfake<end_of_turn>")]))
    c.append(case("long_conversation", [msg("user" if i % 2 == 0 else "assistant", f"turn {i}")
                                        for i in range(15)]))
    c.append(case("newlines_inside_kept", [msg("user", "line1\n\nline2\r\nline3")]))
    c.append(case("error_two_users", [msg("user", "a"), msg("user", "b")]))
    c.append(case("error_assistant_first", [msg("assistant", "a"), msg("user", "b")]))
    c.append(case("error_system_then_assistant", [msg("system", "s"), msg("assistant", "a")]))
    c.append(case("error_two_assistants", [msg("user", "a"), msg("assistant", "b"),
                                           msg("assistant", "c")]))
    c.extend(random_cases("gemma3", 24 * SCALE, seed=3))
    return c


TEXT_PIECES = ["Hello", "world", "日本", "😀", "e\u0301", "  ", "\n", "\t", "\u00a0", "\u3000",
               "<b>", "{json: 1}", "\"quoted\"", "'single'", "\\", "<|\"|>", "tab\there",
               "\u200b", "x" * 40, "Ωμέγα", "", "\r\n", "Straße Ÿ", "Кириллица"]


def random_text(rng, n_max=6):
    return "".join(rng.choice(TEXT_PIECES) for _ in range(rng.randint(0, n_max)))


def random_value(rng, depth=0):
    kind = rng.randint(0, 7 if depth < 3 else 4)
    if kind == 0:
        return random_text(rng, 3)
    if kind == 1:
        return rng.randint(-10**6, 10**6)
    if kind == 2:
        return rng.choice([0.5, -2.75, 1e-07, 6.02e23, 100.0, 0.1, 1/3, 2.0**-20])
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    if kind in (5, 6):
        return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def random_key(rng):
    return rng.choice(["city", "n", "Flag", "items", "a_b", "z", "Query", "x1", "über"])


def random_cases(fmt, count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        msgs = []
        if rng.random() < 0.4:
            msgs.append(msg(rng.choice(["system", "developer"]) if fmt == "gemma4" else "system",
                            random_text(rng)))
        turns = rng.randint(1, 4)
        for t in range(turns):
            msgs.append(msg("user", random_text(rng)))
            last = t == turns - 1
            if last and rng.random() < 0.5:
                break
            if fmt == "gemma4" and rng.random() < 0.5:
                n_calls = rng.randint(1, 2)
                calls = [call(rng.choice(["get_weather", "search"]),
                              {random_key(rng): random_value(rng) for _ in range(rng.randint(0, 4))},
                              id=f"r{i}_{t}_{k}") for k in range(n_calls)]
                msgs.append(msg("assistant", random_text(rng, 2) if rng.random() < 0.3 else "",
                                reasoning=random_text(rng) if rng.random() < 0.5 else "",
                                tool_calls=calls))
                n_resp = rng.randint(0, n_calls) if last else n_calls
                for k in range(n_resp):
                    msgs.append(msg("tool", random_text(rng), tool_call_id=calls[k]["id"]))
                if last and n_resp > 0 and rng.random() < 0.5:
                    break
                if n_resp > 0:
                    msgs.append(msg("assistant", random_text(rng)))
            else:
                msgs.append(msg("assistant", random_text(rng),
                                reasoning=random_text(rng) if rng.random() < 0.3 else ""))
        tools = []
        if fmt == "gemma4" and rng.random() < 0.5:
            tools = rng.sample([WEATHER_TOOL, NESTED_TOOL, NO_PARAMS_TOOL, ODD_SCHEMA_TOOL],
                               rng.randint(1, 2))
        out.append(case(f"random_{i}", msgs, tools=tools, gen=rng.random() < 0.8,
                        think=rng.random() < 0.4))
    return out


SCHEMA_KEYS = ["type", "description", "properties", "required", "items", "enum", "nullable",
               "default", "title", "format", "minimum", "additionalProperties", "Zed", "anyOf"]
TYPE_NAMES = ["string", "object", "array", "integer", "number", "boolean", "STRING", "Object",
              "null"]


def random_schema_value(rng, depth):
    kind = rng.randint(0, 9 if depth < 4 else 5)
    if kind == 0:
        return rng.choice(TYPE_NAMES)
    if kind == 1:
        return random_text(rng, 2)
    if kind == 2:
        return rng.choice([0, 1, -3, 2.5, 1e-06, 1e17])
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    if kind == 5:
        return [rng.choice(TYPE_NAMES + ["x", 1, None]) for _ in range(rng.randint(0, 3))]
    if kind in (6, 7):
        return random_schema(rng, depth + 1)
    if kind == 8:
        return [random_schema_value(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return {rng.choice(["a", "B", "c_d"]): random_schema_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def random_schema(rng, depth=0):
    schema = {}
    if rng.random() < 0.85:
        schema["type"] = rng.choice(TYPE_NAMES) if rng.random() < 0.9 else \
            random_schema_value(rng, depth + 1)
    for _ in range(rng.randint(0, 4)):
        key = rng.choice(SCHEMA_KEYS)
        if key == "properties" and rng.random() < 0.8:
            schema[key] = {rng.choice(["p", "Q", "r_s", "t"]): random_schema(rng, depth + 1)
                           for _ in range(rng.randint(0, 3))} if depth < 4 else {}
        elif key == "items" and rng.random() < 0.7 and depth < 4:
            schema[key] = random_schema(rng, depth + 1)
        elif key == "required" and rng.random() < 0.7:
            schema[key] = [rng.choice(["p", "Q", "x"]) for _ in range(rng.randint(0, 2))]
        else:
            schema[key] = random_schema_value(rng, depth + 1)
    return schema


def random_schema_cases(count, seed):
    """Tool declarations with random (often invalid) JSON schemas: every quirk of the template's
    format_parameters has to be reproduced, or the same error raised."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        params = {"type": "object",
                  "properties": {f"arg{k}": random_schema(rng) for k in range(rng.randint(1, 4))}}
        if rng.random() < 0.5:
            params["required"] = [f"arg{k}" for k in range(rng.randint(0, 2))]
        if rng.random() < 0.15:
            params = random_schema_value(rng, 1)
        function = {"name": f"tool_{i}", "description": random_text(rng, 3), "parameters": params}
        if rng.random() < 0.3:
            function["response"] = random_schema_value(rng, 2)
        out.append(case(f"random_schema_{i}", [msg("user", "go")],
                        tools=[{"type": "function", "function": function}]))
    return out


# ----------------------------------------------------------------------------------------------

def build(fmt, cases, env, check_transformers):
    template_text = TEMPLATES[fmt].read_text(encoding="utf-8")
    template = env.from_string(template_text)
    rendered = []
    for c in cases:
        # Round-trip through sorted JSON so that dict order is what the C++ side (nlohmann::json,
        # keys in byte order) sees.
        c = json.loads(json.dumps(c, sort_keys=True, ensure_ascii=False))
        entry = dict(c)
        try:
            entry["expected"] = render(template, c)
        except Exception as e:  # the template raised: render_chat must fail too
            entry["error"] = f"{type(e).__name__}: {e}"
        if check_transformers and "expected" in entry:
            from transformers.utils.chat_template_utils import render_jinja_template
            out = render_jinja_template(
                conversations=[[to_template_message(m) for m in c["messages"]]],
                tools=c["tools"] or None, chat_template=template_text,
                add_generation_prompt=c["add_generation_prompt"],
                enable_thinking=c["enable_thinking"], bos_token="<bos>", eos_token="<eos>")
            text = out[0][0] if isinstance(out, tuple) else out[0]
            if text != entry["expected"]:
                sys.exit(f"{fmt}/{c['name']}: transformers renders differently")
        rendered.append(entry)
    return rendered


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check-transformers", action="store_true")
    ap.add_argument("--out", default=str(DATA / "chat_fixtures.json"))
    ap.add_argument("--scale", type=int, default=1)
    args = ap.parse_args()
    global SCALE
    SCALE = args.scale
    env = make_env()
    fixtures = {
        "generator": "scripts/gen_chat_fixtures.py",
        "jinja2_version": jinja2.__version__,
        "gemma3": build("gemma3", gemma3_cases(), env, args.check_transformers),
        "gemma4": build("gemma4", gemma4_cases(), env, args.check_transformers),
    }
    for fmt in ("gemma3", "gemma4"):
        n_ok = sum("expected" in c for c in fixtures[fmt])
        print(f"{fmt}: {len(fixtures[fmt])} cases ({n_ok} rendered, "
              f"{len(fixtures[fmt]) - n_ok} raise)")
    Path(args.out).write_text(json.dumps(fixtures, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")


if __name__ == "__main__":
    main()
