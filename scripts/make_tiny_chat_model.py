#!/usr/bin/env python3
# Writes the tiny Gemma 4 GGUF models the server tests run on: a vocabulary with the real chat
# special tokens plus byte tokens, and either hand-set weights that follow fixed scripts or random ones.
"""Tiny Gemma 4 GGUF fixtures for the server tests (tests/server/data/).

gemma4-tiny-chat.gguf (F32, hand-set weights) behaves like a bigram model whose greedy
continuation is fixed by the last prompt token, so end-to-end tests know what comes out:

  * thinking off, the prompt ends in "<channel|>":  "Hello from the tiny model." <turn|>
  * thinking on, the prompt ends in "model\\n":     <|channel>thought\\nI should say hello.<channel|>
                                                    then the reply above
  * tools declared (a <|tool> token anywhere before): after "<channel|>" the model calls
    <|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|><|tool_response>
  * after a tool response ("<tool_response|>"):       "The weather in Paris is sunny." <turn|>
  * a raw prompt ending in ":":                       " one two three ... ten" <eos>
  * a raw prompt ending in ";":                       " price: 5€" (the euro sign as three byte tokens) <eos>

How: layer 0 (sliding) is all zeros. Layer 1 (full attention) detects the <|tool> marker: only the
marker has a non-zero key/value, the query is zero so attention is uniform, and because the
post-attention RMS norm rescales whatever reaches it, any non-zero share of the marker adds the
same "tools" vector to the residual stream. Embeddings are one-hot "state" directions and the
untied LM head maps each state to the logit of its successor.

gemma4-tiny-random.gguf (Q8_0 matrices, random weights, same vocabulary) exercises the real
arithmetic: batched-versus-alone equality, seeded sampling, arbitrary byte output.

Usage: python3 scripts/make_tiny_chat_model.py [--out-dir tests/server/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

H = 64            # hidden size
F = 128           # MLP width
CONTEXT = 32768  # long enough that a request can run for seconds (cancellation tests)
MODE_DIM = H - 1  # residual direction set when tools were declared
MARKER_KEY_DIM = 20  # a key dimension that RoPE leaves alone (partial rotation: 25 % of pairs)

SPECIAL_CONTROL = ["<|turn>", "<turn|>", "<|think|>", "<|tool>", "<tool|>", "<|image|>", "<|audio|>", "<|video|>"]
# Stored as USER_DEFINED in Gemma 4 GGUF files so that they decode as text (gemma-spec.md §3.2).
SPECIAL_TEXT = ["<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool_response>",
                "<tool_response|>", '<|"|>']
MERGES = [("\u2581", "t"), ("t", "h"), ("h", "e"), ("i", "n"), ("e", "r"), ("a", "n"), ("o", "n")]

# Output-only pieces: no merge produces them, so prompts never contain them.
SCRIPT_PIECES = [
    "Hello", "\u2581from", "\u2581the", "\u2581tiny", "\u2581model.",
    "thought\n", "I\u2581should", "\u2581say\u2581hello.",
    "call:get_weather{city:", 'Paris<|"|>,days:3}',
    "The\u2581weather\u2581in\u2581Paris", "\u2581is\u2581sunny.",
    "\u2581one", "\u2581two", "\u2581three", "\u2581four", "\u2581five", "\u2581six", "\u2581seven",
    "\u2581eight", "\u2581nine", "\u2581ten",
    "\u2581price:", "\u25815",
]

# (state, successor) pairs; the successor is what greedy decoding emits after the state token.
TRANSITIONS = [
    ("<channel|>", "Hello"), ("Hello", "\u2581from"), ("\u2581from", "\u2581the"), ("\u2581the", "\u2581tiny"),
    ("\u2581tiny", "\u2581model."), ("\u2581model.", "<turn|>"),
    ("\n", "<|channel>"), ("<|channel>", "thought\n"), ("thought\n", "I\u2581should"),
    ("I\u2581should", "\u2581say\u2581hello."), ("\u2581say\u2581hello.", "<channel|>"),
    ("<|tool_call>", "call:get_weather{city:"), ("call:get_weather{city:", '<|"|>'),
    ('<|"|>', 'Paris<|"|>,days:3}'), ('Paris<|"|>,days:3}', "<tool_call|>"), ("<tool_call|>", "<|tool_response>"),
    ("<tool_response|>", "The\u2581weather\u2581in\u2581Paris"),
    ("The\u2581weather\u2581in\u2581Paris", "\u2581is\u2581sunny."), ("\u2581is\u2581sunny.", "<turn|>"),
    (":", "\u2581one"), ("\u2581one", "\u2581two"), ("\u2581two", "\u2581three"), ("\u2581three", "\u2581four"),
    ("\u2581four", "\u2581five"), ("\u2581five", "\u2581six"), ("\u2581six", "\u2581seven"),
    ("\u2581seven", "\u2581eight"), ("\u2581eight", "\u2581nine"), ("\u2581nine", "\u2581ten"), ("\u2581ten", "<eos>"),
    (";", "\u2581price:"), ("\u2581price:", "\u25815"), ("\u25815", "<0xE2>"), ("<0xE2>", "<0x82>"),
    ("<0x82>", "<0xAC>"), ("<0xAC>", "<eos>"),
]
# With tools declared, "<channel|>" leads to a tool call instead of "Hello".
TOOL_BRANCH = ("<channel|>", "Hello", "<|tool_call>")


def vocabulary():
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.UNKNOWN]
    tokens += SPECIAL_CONTROL
    types += [gguf.TokenType.CONTROL] * len(SPECIAL_CONTROL)
    tokens += SPECIAL_TEXT
    types += [gguf.TokenType.USER_DEFINED] * len(SPECIAL_TEXT)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
    singles = ["\n", "\u2581"] + [chr(c) for c in range(0x21, 0x7F)]
    tokens += singles
    types += [gguf.TokenType.NORMAL] * len(singles)
    for a, b in MERGES:
        tokens.append(a + b)
        types.append(gguf.TokenType.NORMAL)
    tokens += SCRIPT_PIECES
    types += [gguf.TokenType.NORMAL] * len(SCRIPT_PIECES)
    assert len(set(tokens)) == len(tokens), "duplicate pieces"
    scores = [0.0] * len(tokens)
    return tokens, scores, [int(t) for t in types], [f"{a} {b}" for a, b in MERGES]


def write(path: Path, name: str, tokens, scores, types, merges, layers: list[dict], globals_: dict,
          sliding_window: int, head_dims: tuple[int, int], qtype: QT) -> None:
    hd_swa, hd_full = head_dims
    pattern = [layer["sliding"] for layer in layers]
    w = gguf.GGUFWriter(str(path), "gemma4")
    w.add_type("model")
    w.add_name(name)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32 if qtype == QT.F32 else gguf.LlamaFileType.MOSTLY_Q8_0))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(H)
    w.add_block_count(len(layers))
    w.add_feed_forward_length(F)
    w.add_head_count(layers[0]["n_head"])
    w.add_head_count_kv([layer["n_kv"] for layer in layers])
    w.add_layer_norm_rms_eps(globals_["eps"])
    w.add_sliding_window(sliding_window)
    w.add_sliding_window_pattern(pattern)
    w.add_key_length(hd_full)
    w.add_value_length(hd_full)
    w.add_key_length_swa(hd_swa)
    w.add_value_length_swa(hd_swa)
    w.add_rope_freq_base(1000000.0)
    w.add_rope_freq_base_swa(10000.0)
    w.add_rope_dimension_count(hd_full)
    w.add_rope_dimension_count_swa(hd_swa)
    w.add_final_logit_softcapping(30.0)
    w.add_shared_kv_layers(0)
    w.add_embedding_length_per_layer_input(0)
    w.add_tokenizer_model("gemma4")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)

    def tensor(tname: str, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if qtype != QT.F32 and arr.ndim == 2:
            q = gguf.quants.quantize(arr, qtype)
            w.add_tensor(tname, q, raw_shape=q.shape, raw_dtype=qtype)
        else:
            w.add_tensor(tname, arr)

    tensor("token_embd.weight", globals_["embed"])
    tensor("output_norm.weight", globals_["final_norm"])
    if "output" in globals_:
        tensor("output.weight", globals_["output"])
    for i, layer in enumerate(layers):
        b = f"blk.{i}."
        for key, gname in [("attn_norm", "attn_norm"), ("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"),
                           ("o", "attn_output"), ("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm"),
                           ("post_attn_norm", "post_attention_norm"), ("ffn_norm", "ffn_norm"),
                           ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down"),
                           ("post_ffw_norm", "post_ffw_norm"), ("scale", "layer_output_scale")]:
            if key in layer:
                tensor(b + gname + ".weight", layer[key])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def scripted_model(tokens):
    ids = {t: i for i, t in enumerate(tokens)}
    V = len(tokens)
    states = sorted({s for s, _ in TRANSITIONS} | {"<|tool>"}, key=lambda t: ids[t])
    assert len(states) < MODE_DIM, "too many states for the hidden size"
    dim = {t: d for d, t in enumerate(states)}
    embed = np.zeros((V, H), np.float32)
    for t, d in dim.items():
        embed[ids[t], d] = 1.0
    # Successor logit ≈ 20 (17.5 after the 30 softcap) against 0 for everything else.
    c = 2.8
    out = np.zeros((V, H), np.float32)
    for s, nxt in TRANSITIONS:
        out[ids[nxt], dim[s]] += c
    state, plain, tool = TOOL_BRANCH
    out[ids[plain], MODE_DIM] -= c
    out[ids[tool], dim[state]] += 0.5 * c
    out[ids[tool], MODE_DIM] += c

    ones = np.ones(H, np.float32)
    zero_layer = lambda hd, with_v: {  # noqa: E731
        "sliding": True, "n_head": 1, "n_kv": 1, "attn_norm": ones, "q": np.zeros((hd, H)), "k": np.zeros((hd, H)),
        **({"v": np.zeros((hd, H))} if with_v else {}), "o": np.zeros((H, hd)), "q_norm": np.ones(hd),
        "k_norm": np.ones(hd), "post_attn_norm": ones, "ffn_norm": ones, "gate": np.zeros((F, H)),
        "up": np.zeros((F, H)), "down": np.zeros((H, F)), "post_ffw_norm": ones, "scale": np.ones(1)}
    hd_swa, hd_full = 32, 64
    layer0 = zero_layer(hd_swa, True)
    layer1 = zero_layer(hd_full, False)  # full attention, K = V (no attn_v)
    layer1["sliding"] = False
    layer1["k"][MARKER_KEY_DIM, dim["<|tool>"]] = 1.0
    layer1["o"][MODE_DIM, MARKER_KEY_DIM] = 1.0
    post = np.ones(H, np.float32)
    post[MODE_DIM] = 0.5  # the tools vector is half the size of a state's embedding (8 → 4)
    layer1["post_attn_norm"] = post
    # A tiny eps keeps the RMS norm of a small attention share at full size (1/4096 of the marker).
    g = {"embed": embed, "output": out, "final_norm": ones, "eps": 1e-12}
    return [layer0, layer1], g, (hd_swa, hd_full)


def random_model(tokens, seed: int):
    rng = np.random.default_rng(seed)
    V = len(tokens)
    hd_swa, hd_full, n_head = 32, 64, 2
    layers = []
    for i, sliding in enumerate([True, True, True, False]):
        hd = hd_swa if sliding else hd_full
        n_kv = 1
        layer = {"sliding": sliding, "n_head": n_head, "n_kv": n_kv,
                 "attn_norm": 1.0 + 0.1 * rng.standard_normal(H), "q": 0.15 * rng.standard_normal((n_head * hd, H)),
                 "k": 0.15 * rng.standard_normal((n_kv * hd, H)), "o": 0.1 * rng.standard_normal((H, n_head * hd)),
                 "q_norm": 1.0 + 0.1 * rng.standard_normal(hd), "k_norm": 1.0 + 0.1 * rng.standard_normal(hd),
                 "post_attn_norm": 0.5 + 0.1 * rng.standard_normal(H), "ffn_norm": 1.0 + 0.1 * rng.standard_normal(H),
                 "gate": 0.15 * rng.standard_normal((F, H)), "up": 0.15 * rng.standard_normal((F, H)),
                 "down": 0.1 * rng.standard_normal((H, F)), "post_ffw_norm": 0.5 + 0.1 * rng.standard_normal(H),
                 "scale": np.array([0.8])}
        if sliding:
            layer["v"] = 0.15 * rng.standard_normal((n_kv * hd, H))
        layers.append(layer)
    # An untied head: with a tied one a random model mostly repeats its input token.
    g = {"embed": 0.5 * rng.standard_normal((V, H)), "output": 0.3 * rng.standard_normal((V, H)),
         "final_norm": 1.0 + 0.1 * rng.standard_normal(H), "eps": 1e-6}
    return layers, g, (hd_swa, hd_full)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "tests/server/data")
    ap.add_argument("--seed", type=int, default=20260401)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tokens, scores, types, merges = vocabulary()

    layers, g, hds = scripted_model(tokens)
    p = args.out_dir / "gemma4-tiny-chat.gguf"
    write(p, "gemma4 tiny scripted chat", tokens, scores, types, merges, layers, g, 64, hds, QT.F32)
    print(f"{p}: {p.stat().st_size} bytes, vocab {len(tokens)}")

    layers, g, hds = random_model(tokens, args.seed)
    p = args.out_dir / "gemma4-tiny-random.gguf"
    write(p, "gemma4 tiny random", tokens, scores, types, merges, layers, g, 16, hds, QT.Q8_0)
    print(f"{p}: {p.stat().st_size} bytes, vocab {len(tokens)}")


if __name__ == "__main__":
    main()
