# Reference outputs of the real Gemma 3 270M Q4_K_M GGUF, computed by Hugging Face transformers
# (GGUF dequantized to fp32, CPU, eager attention): teacher-forced top-1/top-5 over a long English
# text and greedy completions. Writes tests/data/real/gemma3_270m_reference.json (see tests/golden/README.md).
"""Usage: python3 scripts/gen_real_model_reference.py [--model PATH] [--out PATH]"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gguf
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_export  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path("/work/models/gemma-3-270m-q4_k_m.gguf")
N_GREEDY = 32
BOS, EOS = 2, 1

# An original plain factual essay (written for this project) long enough to pass the 512-token
# sliding window of the 270M model.
ESSAY = """\
How Water Moves Around the Earth

Water is one of the few substances that exists naturally on Earth as a solid, a liquid and a gas. \
The continuous movement of water between the oceans, the air and the land is called the water cycle, \
or the hydrological cycle. It has no beginning and no end, but it is easiest to describe by starting \
with the oceans, which hold about ninety-seven percent of all the water on the planet.

When sunlight warms the surface of the sea, some of the water evaporates and rises into the \
atmosphere as invisible water vapour. Evaporation also happens from lakes, rivers, wet soil and \
puddles. Plants add more vapour through a process called transpiration: they draw water up from \
their roots and release it through tiny openings in their leaves. Together, evaporation and \
transpiration move an enormous amount of water into the air every day.

Warm air can hold more water vapour than cold air. As moist air rises, it expands and cools, and \
eventually it can no longer hold all of its vapour. The excess condenses onto small particles of \
dust, salt or smoke, forming the droplets and ice crystals that make up clouds. A typical cloud \
droplet is far too small to fall, so it stays suspended in the air. Only when many droplets collide \
and merge, or when ice crystals grow at the expense of nearby droplets, do the particles become \
heavy enough to fall as rain, snow, sleet or hail. This stage is known as precipitation.

Most precipitation falls back into the oceans, but a significant share lands on the continents. \
What happens next depends on the ground it reaches. On steep or paved surfaces, water runs off \
quickly into streams and rivers, which carry it back towards the sea. On soft soil or in forests, \
much of it soaks into the ground. Some of this water is taken up by plant roots, while the rest \
moves slowly downward until it reaches a zone where every space between grains of sand and rock is \
already filled. This underground store is called groundwater, and the upper surface of the \
saturated zone is called the water table. Groundwater can remain underground for days or for \
thousands of years before it seeps into a river, a lake or the sea, or is pumped up from a well.

In cold regions and on high mountains, precipitation may fall as snow and stay frozen for a long \
time. Layers of snow that survive many summers are gradually compressed into glacial ice. Glaciers \
and ice sheets store roughly two thirds of the fresh water on Earth. When they melt in spring and \
summer, they feed rivers that many towns and farms depend on during the dry season.

The water cycle also moves heat. Evaporation absorbs energy from the surface, and condensation \
releases that energy high in the atmosphere. This transfer helps to power storms and to carry warmth \
from the tropics towards the poles. Because of this, changes in temperature can alter how fast \
water evaporates, how much vapour the air holds and where rain falls.

People rely on every part of the cycle. Farmers need rain at the right time of year, cities draw \
drinking water from rivers, reservoirs and aquifers, and power stations use flowing water to turn \
turbines. Scientists measure rainfall, river flow, soil moisture and groundwater levels to \
understand how much water is available and to plan for floods and droughts. Satellites now help by \
mapping clouds, snow cover and even small changes in the gravity field caused by shifting \
groundwater.

Although the total amount of water on Earth stays almost constant, its distribution is always \
changing. A single molecule might spend thousands of years in the deep ocean, a few days in the \
atmosphere, a season in a mountain snowfield and a few weeks in a river before it returns to the \
sea. Understanding these journeys helps us to use water wisely and to protect the rivers, lakes and \
underground stores that all living things depend on.
"""

PROMPTS = [
    "The capital of France is",
    "The largest planet in our solar system is",
    "Water freezes at a temperature of",
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def logits_of(model, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0].float()


def manual_model_from_gguf(path: Path, config):
    """Independent build: dequantize every tensor with gguf-py, map names, undo the +1 norm shift."""
    reader = gguf.GGUFReader(str(path))
    inverse = {}
    for i in range(config.num_hidden_layers):
        for hf_suffix in gguf_export._LAYER_NAMES:
            hf = f"model.layers.{i}.{hf_suffix}"
            inverse[f"blk.{i}.{gguf_export._LAYER_NAMES[hf_suffix]}"] = hf
    for hf, gg in gguf_export._GLOBAL_NAMES.items():
        inverse[gg] = hf
    state = {}
    for t in reader.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = [int(x) for x in reversed(t.shape)]  # ggml [ne0, ne1] -> torch [ne1, ne0]
        arr = np.asarray(arr, dtype=np.float32).reshape(shape)
        hf = inverse[t.name]
        if hf.endswith("norm.weight"):
            arr = arr - np.float32(1.0)
        state[hf] = torch.from_numpy(arr.copy())
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model = transformers.Gemma3ForCausalLM(config).to(torch.float32).eval()
    model.load_state_dict(state, strict=True)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "real" / "gemma3_270m_reference.json"))
    args = ap.parse_args()
    model_path = Path(args.model)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(model_path.parent, gguf_file=model_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        model_path.parent, gguf_file=model_path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    t_load = time.time() - t0
    cfg = model.config
    print(f"loaded {type(model).__name__} in {t_load:.1f} s: layers {cfg.num_hidden_layers}, "
          f"qpas {cfg.query_pre_attn_scalar}, window {cfg.sliding_window}, rope {cfg.rope_parameters}")

    # transformers must undo llama.cpp's +1 on Gemma 3 norm weights.
    reader = gguf.GGUFReader(str(model_path))
    raw = {t.name: np.asarray(gguf.quants.dequantize(t.data, t.tensor_type)) for t in reader.tensors
           if t.name in ("blk.0.attn_norm.weight", "output_norm.weight")}
    assert np.allclose(raw["blk.0.attn_norm.weight"] - 1,
                       model.model.layers[0].input_layernorm.weight.detach().numpy(), atol=0, rtol=0)
    assert np.allclose(raw["output_norm.weight"] - 1, model.model.norm.weight.detach().numpy(), atol=0, rtol=0)
    print("norm shift: transformers stores GGUF weight - 1 (correct for Gemma3RMSNorm's 1 + w)")

    # (a) teacher-forced pass over the essay.
    tokens = tok(ESSAY, add_special_tokens=False).input_ids
    tokens = [BOS] + list(tokens)
    assert tok.decode(tokens[1:]) == ESSAY, "tokenizer round trip changed the essay"
    if len(tokens) < 600:
        raise RuntimeError(f"essay is only {len(tokens)} tokens")
    t1 = time.time()
    logits = logits_of(model, tokens)
    t_forward = time.time() - t1
    top5 = torch.topk(logits, 5, dim=-1)
    top1 = logits.argmax(-1).tolist()
    assert top1 == top5.indices[:, 0].tolist()
    acc = float(np.mean([top1[i] == tokens[i + 1] for i in range(len(tokens) - 1)]))
    margins = (top5.values[:, 0] - top5.values[:, 1]).numpy()
    print(f"essay: {len(tokens)} tokens, next-token top-1 accuracy {acc:.3f}, "
          f"min top1-top2 margin {margins.min():.2e}, forward {t_forward:.1f} s")

    # Independent reconstruction from the GGUF must give the same logits.
    manual = manual_model_from_gguf(model_path, cfg)
    d = float((logits_of(manual, tokens[:128]) - logits[:128]).abs().max())
    print(f"manual GGUF build vs transformers loader: max |dlogit| {d:.3g}")
    if d > 1e-4:
        raise RuntimeError("transformers' GGUF loader and the manual build disagree")
    del manual

    # (b) greedy completions (no cache, full recompute each step; exactly N_GREEDY tokens, stop ids ignored).
    completions = []
    for prompt in PROMPTS:
        ptoks = [BOS] + tok(prompt, add_special_tokens=False).input_ids
        seq = list(ptoks)
        for _ in range(N_GREEDY):
            seq.append(int(logits_of(model, seq)[-1].argmax()))
        gen = seq[len(ptoks):]
        with torch.no_grad():
            hf_gen = model.generate(torch.tensor([ptoks]), max_new_tokens=N_GREEDY,
                                    do_sample=False)[0, len(ptoks):].tolist()
        if not hf_gen or hf_gen != gen[: len(hf_gen)]:  # generate() may stop early at a stop id
            raise RuntimeError(f"generate() with cache disagrees with full recompute for {prompt!r}")
        text = tok.decode(gen)
        print(f"  {prompt!r} -> {text!r}")
        completions.append({"prompt": prompt, "prompt_tokens": ptoks, "greedy_tokens": gen, "text": text})

    elapsed = time.time() - t0
    out = {
        "model_file": model_path.name,
        "model_sha256": sha256(model_path),
        "reference": "transformers Gemma3ForCausalLM from the GGUF (dequantized to fp32), CPU, eager attention",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "gguf_version": importlib.metadata.version("gguf"),
        "time_s": round(elapsed, 1),
        "forward_time_s": round(t_forward, 2),
        "n_tokens": len(tokens),
        "top1_accuracy": acc,
        "tokens": tokens,
        "top1": top1,
        "top5_ids": top5.indices.tolist(),
        "top5_logits": [[round(float(v), 5) for v in row] for row in top5.values],
        "completions": completions,
        "text": ESSAY,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} B) in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
