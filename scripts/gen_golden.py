# Generates the golden fixtures in tests/data/golden/: tiny random Gemma 3 / Gemma 4 checkpoints,
# reference logits from Hugging Face transformers (CPU, fp32, eager attention), and GGUF exports
# (F32 / Q8_0 / Q4_0) with logits recomputed on the dequantized weights. See tests/golden/README.md.
"""Usage: python3 scripts/gen_golden.py [--out tests/data/golden] [--only NAME ...]"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import transformers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Gemma4ForCausalLM, Gemma4TextConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_export  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

N_TOKENS = 80
N_VOCAB = 512
TOKEN_SEED = 20240611
KEEP_FILES = {"config.json", "model.safetensors", "generation_config.json"}

# Common tiny geometry: 7 layers so the 5:1 pattern has a full layer at 5 and a sliding one after it.
_GEMMA3_COMMON = dict(
    vocab_size=N_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=7,
    num_attention_heads=4,
    head_dim=32,
    query_pre_attn_scalar=24,  # != head_dim, so a 1/sqrt(head_dim) scale is caught
    sliding_window=8,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    max_position_embeddings=512,
    hidden_activation="gelu_pytorch_tanh",
)
_GEMMA4_COMMON = dict(
    vocab_size=N_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=7,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    global_head_dim=64,
    hidden_size_per_layer_input=0,
    num_kv_shared_layers=0,
    enable_moe_block=False,
    use_double_wide_mlp=False,
    final_logit_softcapping=30.0,
    sliding_window=8,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    max_position_embeddings=512,
    layer_types=["sliding_attention"] * 5 + ["full_attention"] * 2,
    rope_parameters={
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0},
    },
)

# name -> family, seed, embedding std, config kwargs, config.json spelling ("legacy" = released
# checkpoints, "transformers" = as transformers 5 saves it), GGUF options, notes for tokens.json.
VARIANTS = {
    "gemma3_tiny": dict(
        family="gemma3",
        seed=1001,
        embed_std=0.5,
        config=dict(
            _GEMMA3_COMMON,
            num_key_value_heads=2,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
            },
        ),
        spelling="legacy",
        notes="Gemma 3, GQA 2, query_pre_attn_scalar 24 (head_dim 32), sliding window 8, linear RoPE x8 on "
        "full layers (layer 5), random (1+w) norms. config.json uses the released-checkpoint spelling "
        "(rope_theta, rope_local_base_freq, rope_scaling).",
    ),
    "gemma3_tiny_noscale": dict(
        family="gemma3",
        seed=1002,
        embed_std=0.5,
        config=dict(
            _GEMMA3_COMMON,
            num_key_value_heads=1,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            },
        ),
        spelling="transformers",
        notes="Gemma 3 like 270M: 1 KV head, no RoPE scaling. config.json uses the transformers 5 "
        "spelling (rope_parameters per layer type).",
    ),
    "gemma4_tiny": dict(
        family="gemma4",
        seed=2001,
        embed_std=1.0,
        config=dict(_GEMMA4_COMMON, attention_k_eq_v=True, num_global_key_value_heads=1),
        spelling="legacy",
        notes="Gemma 4 like 31B: K=V on full layers (no v_proj), full layers head_dim 64 with 1 KV head "
        "(GQA 4), sliding head_dim 32 with 2 KV heads, proportional RoPE (25%) on full layers, "
        "layer_scalar, final softcap 30. config.json uses the released-checkpoint spelling "
        "(global_head_dim, num_global_key_value_heads).",
    ),
    "gemma4_tiny_nokeqv": dict(
        family="gemma4",
        seed=2002,
        embed_std=1.0,
        config=dict(_GEMMA4_COMMON, attention_k_eq_v=False),
        spelling="transformers",
        gguf_scalar_head_count_kv=True,
        notes="Gemma 4 without K=V (full layers keep v_proj, 2 KV heads, GQA 2; head_dim 64). config.json "
        "uses the transformers 5 spelling (per_layer_config); the GGUF has a scalar head_count_kv like "
        "llama.cpp writes for models without num_global_key_value_heads.",
    ),
}


def make_tokens() -> list[int]:
    rng = np.random.RandomState(TOKEN_SEED)
    return [2] + [int(t) for t in rng.randint(4, N_VOCAB, size=N_TOKENS - 1)]


def build_model(family: str, config_kwargs: dict):
    kwargs = copy.deepcopy(config_kwargs)
    if family == "gemma3":
        cfg = Gemma3TextConfig(**kwargs)
        cls = Gemma3ForCausalLM
    else:
        cfg = Gemma4TextConfig(**kwargs)
        cls = Gemma4ForCausalLM
    cfg._attn_implementation = "eager"
    model = cls(cfg).to(torch.float32).eval()
    return model


def randomise(model, family: str, embed_std: float, seed: int) -> None:
    """Replace the default init so every tensor matters: O(1) activations, random norms and scalars."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "lm_head.weight":
                continue  # tied
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * embed_std)
            elif name.endswith(("q_norm.weight", "k_norm.weight")) and family == "gemma4":
                # Gemma 4 attends with scale 1.0, so |q.k| ~ w_q * w_k * head_dim; multipliers around 1
                # make the softmax nearly one-hot and the network chaotic (fp32 rounding grows ~8x per
                # layer). Around 0.45 gives a trained-like temperature and is far from the (1 + w) mistake.
                p.copy_(0.45 + 0.12 * torch.randn(p.shape, generator=g))
            elif name.endswith("norm.weight"):
                # Gemma 3 stores w of (1 + w); Gemma 4 stores the raw multiplier.
                mean = 0.0 if family == "gemma3" else 1.0
                p.copy_(mean + 0.3 * torch.randn(p.shape, generator=g))
            elif p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[1]))
            else:
                raise RuntimeError(f"randomise: unexpected parameter {name} {tuple(p.shape)}")
        if family == "gemma4":
            for layer in model.model.layers:
                layer.layer_scalar.copy_(0.1 + 0.8 * torch.rand(1, generator=g))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "embeddings not tied"


def forward_logits(model, tokens: list[int]) -> np.ndarray:
    ids = torch.tensor([tokens], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=False)
    return out.logits[0].to(torch.float32).numpy()


def precap_logits(model, tokens: list[int]) -> np.ndarray:
    ids = torch.tensor([tokens], dtype=torch.long)
    with torch.no_grad():
        h = model.model(input_ids=ids, use_cache=False).last_hidden_state
        return model.lm_head(h)[0].numpy()


def check_gemma4_geometry(model, keqv: bool) -> None:
    """The config spelling of global head dim / KV heads changed in transformers 5; verify the built model."""
    for i, layer in enumerate(model.model.layers):
        a = layer.self_attn
        if model.config.layer_types[i] == "full_attention":
            want_kv = 1 if keqv else 2
            assert a.head_dim == 64, f"layer {i}: full head_dim {a.head_dim}"
            assert a.k_proj.out_features == want_kv * 64, f"layer {i}: k_proj {a.k_proj.out_features}"
            assert a.q_proj.out_features == 4 * 64
            assert (a.v_proj is None) == keqv, f"layer {i}: v_proj presence wrong"
            assert a.num_key_value_groups == 4 // want_kv
        else:
            assert a.head_dim == 32 and a.k_proj.out_features == 64 and a.v_proj is not None
            assert a.num_key_value_groups == 2


def rewrite_config(path: Path, family: str, spelling: str, config_kwargs: dict) -> None:
    """Rewrite config.json into the released-checkpoint spelling where requested."""
    cfg = json.loads(path.read_text())
    if spelling == "legacy" and family == "gemma3":
        rp = cfg.pop("rope_parameters")
        full = dict(rp["full_attention"])
        cfg["rope_theta"] = full.pop("rope_theta")
        cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
        cfg["rope_scaling"] = full if full.get("rope_type", "default") != "default" else None
        cfg["sliding_window_pattern"] = 6
    elif spelling == "legacy" and family == "gemma4":
        cfg.pop("per_layer_config")
        cfg["global_head_dim"] = config_kwargs["global_head_dim"]
        if config_kwargs.get("attention_k_eq_v"):
            cfg["num_global_key_value_heads"] = config_kwargs["num_global_key_value_heads"]
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def perturbation_report(family, config_kwargs, state, tokens, ref, name) -> dict:
    """Max |Δlogit| when one feature is implemented wrongly; every entry must be clearly non-zero."""
    probes = {}

    def with_cfg(**changes):
        kw = copy.deepcopy(config_kwargs)
        kw.update(changes)
        m = build_model(family, kw)
        m.load_state_dict(state, strict=True)
        return m

    no_window = dict(sliding_window=4096)
    probes["sliding window ignored"] = with_cfg(**no_window)
    if family == "gemma3":
        probes["scale 1/sqrt(head_dim)"] = with_cfg(query_pre_attn_scalar=32)
        rp = copy.deepcopy(config_kwargs["rope_parameters"])
        if rp["full_attention"]["rope_type"] == "linear":
            rp["full_attention"] = {"rope_type": "default", "rope_theta": 1e6}
            probes["rope scaling dropped"] = with_cfg(rope_parameters=rp)
        rp = copy.deepcopy(config_kwargs["rope_parameters"])
        rp["sliding_attention"]["rope_theta"] = 1e6
        probes["sliding rope theta = global"] = with_cfg(rope_parameters=rp)
    else:
        probes["no final softcap"] = with_cfg(final_logit_softcapping=None)
        rp = copy.deepcopy(config_kwargs["rope_parameters"])
        rp["full_attention"] = {"rope_type": "default", "rope_theta": 1e6}
        probes["full rope not proportional"] = with_cfg(rope_parameters=rp)
        m = with_cfg()
        with torch.no_grad():
            for layer in m.model.layers:
                layer.layer_scalar.fill_(1.0)
        probes["layer_scalar ignored"] = m
    report = {}
    for label, m in probes.items():
        d = float(np.abs(forward_logits(m, tokens) - ref).max())
        report[label] = d
        if d < 1e-2:
            raise RuntimeError(f"{name}: perturbation '{label}' changes logits by only {d:g}")
    return report


def make_variant(name: str, spec: dict, out_root: Path, tokens: list[int]) -> dict:
    family, cfgkw = spec["family"], spec["config"]
    torch.manual_seed(spec["seed"])
    model = build_model(family, cfgkw)
    randomise(model, family, spec["embed_std"], spec["seed"])
    if family == "gemma4":
        check_gemma4_geometry(model, keqv=cfgkw["attention_k_eq_v"])

    logits = forward_logits(model, tokens)
    info = {"max_abs_logit": float(np.abs(logits).max())}
    # Numerical noise floor: the same model in fp64 (an engine cannot be expected to beat this).
    m64 = copy.deepcopy(model).to(torch.float64)
    info["max_abs_diff_fp64_vs_fp32"] = float(np.abs(forward_logits(m64, tokens) - logits).max())
    del m64
    if family == "gemma4":
        pre = precap_logits(model, tokens)
        info["max_abs_logit_precap"] = float(np.abs(pre).max())
        info["frac_precap_over_20"] = float((np.abs(pre) > 20).mean())
        if info["max_abs_logit_precap"] <= 20:
            raise RuntimeError(f"{name}: softcap never matters (max pre-cap |logit| {info['max_abs_logit_precap']})")
        assert np.allclose(30 * np.tanh(pre / 30), logits, atol=1e-4)

    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for f in os.listdir(tmp):
            if f in KEEP_FILES:
                shutil.copy(Path(tmp) / f, out / f)
    rewrite_config(out / "config.json", family, spec["spelling"], cfgkw)

    # The fixture directory must reproduce the logits on its own (config spelling included).
    cls = Gemma3ForCausalLM if family == "gemma3" else Gemma4ForCausalLM
    reloaded = cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    if family == "gemma4":
        check_gemma4_geometry(reloaded, keqv=cfgkw["attention_k_eq_v"])
    re_logits = forward_logits(reloaded, tokens)
    if not np.array_equal(re_logits, logits):
        raise RuntimeError(f"{name}: reloaded model differs by {np.abs(re_logits - logits).max():g}")

    meta = {"tokens": tokens, "n_vocab": N_VOCAB, "model_type": model.config.model_type, "notes": spec["notes"]}
    (out / "tokens.json").write_text(json.dumps(meta) + "\n")
    logits.astype("<f4").tofile(out / "logits.f32")

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    info["perturbations"] = perturbation_report(family, cfgkw, state, tokens, logits, name)

    # GGUF exports; quantized files get logits from the dequantized weights.
    geo = gguf_export.geometry_from_model(model, family)
    geo.extra["scalar_head_count_kv"] = spec.get("gguf_scalar_head_count_kv", False)
    np_state = {k: v.numpy() for k, v in state.items()}
    for qt, suffix in ((QT.F32, "f32"), (QT.Q8_0, "q8_0"), (QT.Q4_0, "q4_0")):
        path = out / f"model-{suffix}.gguf"
        deq, written = gguf_export.export_gguf(path, geo, np_state, qt, f"{name} {suffix}")
        gguf_export.verify_gguf(path, geo, written)
        if qt == QT.F32:
            info["transformers_gguf_loader_diff_f32"] = transformers_gguf_crosscheck(
                out, family, suffix, tokens, logits)
            continue
        qmodel = build_model(family, cfgkw)
        qstate = {k: torch.from_numpy(deq[k]) if k in deq else v for k, v in state.items()}
        qstate["lm_head.weight"] = qstate["model.embed_tokens.weight"]
        qmodel.load_state_dict(qstate, strict=True)
        qlogits = forward_logits(qmodel, tokens)
        qlogits.astype("<f4").tofile(out / f"logits-{suffix}.f32")
        info[f"max_abs_diff_{suffix}_vs_f32"] = float(np.abs(qlogits - logits).max())
        info[f"argmax_agree_{suffix}"] = float((qlogits.argmax(-1) == logits.argmax(-1)).mean())
        info[f"transformers_gguf_loader_diff_{suffix}"] = transformers_gguf_crosscheck(
            out, family, suffix, tokens, qlogits)
    for k, v in info.items():
        if k.startswith("transformers_gguf_loader_diff") and v > 1e-5:
            raise RuntimeError(f"{name}: transformers' GGUF loader disagrees with the export ({k} = {v:g})")
    info["transformers_version"] = transformers.__version__
    info["torch_version"] = torch.__version__
    (out / "stats.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def transformers_gguf_crosscheck(out: Path, family: str, suffix: str, tokens: list[int], ref: np.ndarray) -> float:
    """Load a written GGUF through transformers' own GGUF loader (independent name map, norm shift and
    dequantizer) with the fixture's config.json, and return max |logit - ref|.

    transformers 5.x ignores layer_output_scale for gemma4 (layer_scalar stays 1.0), so it is copied
    from the GGUF by hand; everything else comes from transformers' loader.
    """
    import gguf

    cls = Gemma3ForCausalLM if family == "gemma3" else Gemma4ForCausalLM
    cfg = cls.config_class.from_pretrained(out)
    model = cls.from_pretrained(
        out, gguf_file=f"model-{suffix}.gguf", config=cfg, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    if family == "gemma4":
        r = gguf.GGUFReader(str(out / f"model-{suffix}.gguf"))
        scales = {t.name: np.asarray(t.data, dtype=np.float32) for t in r.tensors if "layer_output_scale" in t.name}
        with torch.no_grad():
            for i, layer in enumerate(model.model.layers):
                layer.layer_scalar.copy_(torch.from_numpy(scales[f"blk.{i}.layer_output_scale.weight"].copy()))
    return float(np.abs(forward_logits(model, tokens) - ref).max())


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests" / "data" / "golden"))
    ap.add_argument("--only", nargs="*", default=None, help="variant names to (re)generate")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fixed reduction order
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    tokens = make_tokens()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    for name, spec in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        info = make_variant(name, spec, out_root, tokens)
        print(f"\n== {name}")
        for k, v in info.items():
            if isinstance(v, str):
                continue
            if isinstance(v, dict):
                for kk, vv in v.items():
                    print(f"   perturbation '{kk}': max |dlogit| {vv:.4g}")
            else:
                print(f"   {k}: {v:.6g}")
        for f in sorted((out_root / name).iterdir()):
            print(f"   {f.name:24s} {f.stat().st_size:>9d} B")
    print(f"\ntotal {out_root}: {dir_size(out_root) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
