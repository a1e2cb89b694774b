"""End-to-end tests of `gemma synth`: the files it writes are read by the gguf Python package (the
reference reader llama.cpp ships) with the published shapes and llama.cpp names, load and run in
`gemma run` (minimal and copied vocabularies, in place and repacked), and bad options are one-line
errors."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEMMA = pathlib.Path(os.environ.get("GE_GEMMA_BIN", ROOT / "build" / "gemma"))
TINY4 = ROOT / "tests/data/golden/gemma4_tiny/model-q8_0.gguf"


def gemma(*args, timeout=300):
    return subprocess.run([str(GEMMA), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          errors="replace")


def field_value(reader, key):
    f = reader.fields[key]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    return f.parts[f.data[0]][0]


@pytest.mark.parametrize("preset,quant,layers,arch,hidden,ggml_type", [
    ("gemma-3-270m", "q4_0", 2, "gemma3", 640, gguf.GGMLQuantizationType.Q4_0),
    ("gemma-3-270m", "q4_k", 1, "gemma3", 640, gguf.GGMLQuantizationType.Q5_0),  # 640 is no multiple of 256
    ("gemma-3-1b", "q8_0", 1, "gemma3", 1152, gguf.GGMLQuantizationType.Q8_0),
])
def test_gguf_package_reads_synth_output(tmp_path, preset, quant, layers, arch, hidden, ggml_type):
    out = tmp_path / "m.gguf"
    r = gemma("synth", "--preset", preset, "--quant", quant, "--layers", layers, "--seed", 3, "-o", out)
    assert r.returncode == 0, r.stderr
    reader = gguf.GGUFReader(str(out))
    assert field_value(reader, "general.architecture") == arch
    assert field_value(reader, f"{arch}.embedding_length") == hidden
    assert field_value(reader, f"{arch}.block_count") == layers
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 1 + 13 * layers + 1  # embedding, 13 per layer, output norm
    emb = tensors["token_embd.weight"]
    assert emb.tensor_type == ggml_type
    assert [int(x) for x in emb.shape] == [hidden, 262144]
    q = tensors["blk.0.attn_q.weight"]
    assert q.tensor_type == ggml_type
    # Norms are F32 multipliers close to 1; quant blocks dequantize to finite, small weights.
    norm = np.asarray(tensors["blk.0.attn_norm.weight"].data, dtype=np.float32)
    assert norm.shape == (hidden,) and np.all(np.abs(norm - 1.0) < 0.05)
    w = gguf.quants.dequantize(q.data, q.tensor_type)
    assert np.all(np.isfinite(w))
    std = float(np.std(w))
    assert 0.2 / np.sqrt(hidden) < std < 5.0 / np.sqrt(hidden), std
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == 262144


def test_gemma4_preset_has_rope_freqs_and_layer_scalars(tmp_path):
    out = tmp_path / "g4.gguf"
    r = gemma("synth", "--preset", "gemma-4-31b", "--quant", "q8_0", "--layers", 6, "--vocab-only", "-o", out)
    assert r.returncode == 0, r.stderr
    reader = gguf.GGUFReader(str(out))
    assert field_value(reader, "general.architecture") == "gemma4"
    assert len(reader.tensors) == 0
    pattern = reader.fields["gemma4.attention.sliding_window_pattern"]
    assert [bool(pattern.parts[i][0]) for i in pattern.data] == [True] * 5 + [False]


def test_synth_file_runs_in_gemma_in_place_and_repacked(tmp_path):
    out = tmp_path / "m.gguf"
    assert gemma("synth", "--preset", "gemma-3-270m", "--quant", "q8_0", "--layers", 2, "-o", out).returncode == 0
    for extra in ([], ["--no-repack"]):
        r = gemma("run", "-m", out, "-p", "Hello", "-n", 4, "--temp", 0, *extra)
        assert r.returncode == 0, r.stderr
        assert ("in place" in r.stderr) == bool(extra), r.stderr
        assert r.stdout.startswith("Hello")
    # Greedy text is the same in place and repacked (a trained-shape model with a readable vocabulary).
    texts = []
    for extra in ([], ["--no-repack"]):
        r = gemma("run", "-m", TINY4, "-p", "Hello world", "-n", 12, "--temp", 0, *extra)
        assert r.returncode == 0, r.stderr
        texts.append(r.stdout.splitlines()[0])
    assert texts[0] == texts[1] and len(texts[0]) > len("Hello world")


def test_tokenizer_copied_from_another_gguf(tmp_path):
    vocab = tmp_path / "vocab.gguf"
    assert gemma("synth", "--preset", "gemma-3-270m", "--vocab-only", "-o", vocab).returncode == 0
    out = tmp_path / "m.gguf"
    r = gemma("synth", "--preset", "gemma-3-270m", "--layers", 1, "--tokenizer", vocab, "-o", out)
    assert r.returncode == 0 and "tokenizer copied" in r.stdout, r.stderr
    a = gguf.GGUFReader(str(vocab)).fields["tokenizer.ggml.tokens"]
    b = gguf.GGUFReader(str(out)).fields["tokenizer.ggml.tokens"]
    assert len(a.data) == len(b.data)
    # The tiny golden model's 512-token vocabulary fits the 262,144-row embedding.
    r = gemma("synth", "--preset", "gemma-3-270m", "--layers", 1, "--tokenizer", TINY4, "-o", tmp_path / "t.gguf")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--preset", "gemma-9-9000b"], "unknown model preset"),
    (["--quant", "q5_k"], "--quant"),
    (["--layers", "99"], "--layers"),
    (["--layers", "-2"], "--layers"),
    (["--layers", "x"], "--layers"),
    (["--tokenizer", "/nonexistent.gguf"], "--tokenizer"),
    (["--bogus"], "unknown option"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, needle):
    r = gemma("synth", "--preset", "gemma-3-270m", "--layers", 1, "-o", tmp_path / "x.gguf", *args)
    assert r.returncode == 1, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_missing_output_and_existing_file(tmp_path):
    r = gemma("synth", "--preset", "gemma-3-270m")
    assert r.returncode == 1 and "-o" in r.stderr
    out = tmp_path / "x.gguf"
    out.write_bytes(b"keep me")
    r = gemma("synth", "--preset", "gemma-3-270m", "--layers", 1, "-o", out)
    assert r.returncode == 1 and "exists" in r.stderr
    assert out.read_bytes() == b"keep me"
    assert gemma("synth", "--preset", "gemma-3-270m", "--layers", 1, "--force", "-o", out).returncode == 0
    assert list(tmp_path.iterdir()) == [out]
