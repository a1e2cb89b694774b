"""End-to-end tests of the `gemma` command: every subcommand on the tiny golden models and the real
Gemma 3 270M model (GE_TEST_MODEL), bad flags, missing and malformed files."""
import json
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEMMA = pathlib.Path(os.environ.get("GE_GEMMA_BIN", ROOT / "build" / "gemma"))
TINY4 = ROOT / "tests/data/golden/gemma4_tiny/model-q8_0.gguf"
TINY3_DIR = ROOT / "tests/data/golden/gemma3_tiny"
REAL = os.environ.get("GE_TEST_MODEL", "")


def gemma(*args, stdin=None, timeout=300):
    return subprocess.run([str(GEMMA), *map(str, args)], input=stdin, capture_output=True, text=True,
                          timeout=timeout, errors="replace")


def observer(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("PyTorchObserver "))
    return json.loads(line[len("PyTorchObserver "):])


def test_usage_and_help():
    r = gemma()
    assert r.returncode == 2 and "usage: gemma" in r.stderr
    r = gemma("--help")
    assert r.returncode == 0 and "run" in r.stdout and "bench" in r.stdout
    for cmd in ["run", "chat", "bench", "tokenize", "inspect"]:
        r = gemma(cmd, "--help")
        assert r.returncode == 0, cmd
        assert "usage: gemma " + cmd in r.stdout and "--model" in r.stdout, cmd
    r = gemma("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["run", "-m", TINY4, "-p", "x", "--temp", "abc"], "--temp"),
    (["run", "-m", TINY4, "-p", "x", "--top-p", "1.5"], "--top-p"),
    (["run", "-m", TINY4, "-p", "x", "-n", "-3"], "--max-new-tokens"),
    (["run", "-m", TINY4, "-p", "x", "--bogus"], "unknown option"),
    (["run", "-m", TINY4], "prompt"),
    (["run", "-p", "x"], "--model"),
    (["run", "-m", TINY4, "-p", "x", "--backend", "tpu"], "unknown backend"),
    (["run", "-m", TINY4, "-p", "x", "--raw", "--chat"], "exclude"),
    (["bench", "-m", TINY4, "-p", "1,x"], "--n-prompt"),
    (["inspect"], "-m"),
])
def test_bad_flags_are_one_line_errors(args, needle):
    r = gemma(*args)
    assert r.returncode == 1, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr


def test_missing_and_malformed_files(tmp_path):
    r = gemma("run", "-m", tmp_path / "nope.gguf", "-p", "x")
    assert r.returncode == 1 and "no such file" in r.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(200))
    r = gemma("run", "-m", bad, "-p", "x")
    assert r.returncode == 1 and r.stderr.startswith("error: ")
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(TINY4.read_bytes()[:5000])
    r = gemma("inspect", "-m", trunc)
    assert r.returncode == 1 and "gguf" in r.stderr
    pickle = tmp_path / "model.bin"
    pickle.write_bytes(b"\x80\x04junk")
    r = gemma("run", "-m", pickle, "-p", "x")
    assert r.returncode == 1 and "pickle" in r.stderr
    empty_dir = tmp_path / "hf"
    empty_dir.mkdir()
    r = gemma("run", "-m", empty_dir, "-p", "x")
    assert r.returncode == 1 and "config.json" in r.stderr


def test_run_tiny_model_streams_and_reports_stats():
    r = gemma("run", "-m", TINY4, "-p", "abc", "--raw", "-n", "12", "--temp", "0")
    assert r.returncode == 0, r.stderr
    stats = observer(r.stdout)
    assert stats["generated_tokens"] <= 12 and stats["prompt_tokens"] >= 2
    for key in ["prefill_token_per_sec", "model_load_start_ms", "model_load_end_ms", "inference_start_ms",
                "inference_end_ms", "prompt_eval_end_ms", "first_token_ms", "SCALING_FACTOR_UNITS_PER_SECOND"]:
        assert key in stats, key
    assert stats["model_load_start_ms"] <= stats["model_load_end_ms"] <= stats["inference_start_ms"]
    assert "Prompt tokens:" in r.stderr


def test_run_from_safetensors_directory_and_prompt_file(tmp_path):
    p = tmp_path / "prompt.txt"
    p.write_text("hello")
    # The tiny HF directory has no tokenizer.json: a clear error, not a crash.
    r = gemma("run", "-m", TINY3_DIR, "-f", p, "--raw", "-n", "4")
    assert r.returncode == 1 and "tokenizer" in r.stderr


def test_seeded_sampling_is_reproducible():
    args = ["run", "-m", TINY4, "-p", "abc", "--raw", "-n", "16", "--temp", "1.0", "--top-k", "0", "--no-stats"]
    a = gemma(*args, "--seed", "7")
    b = gemma(*args, "--seed", "7")
    c = gemma(*args, "--seed", "8")
    assert a.returncode == b.returncode == c.returncode == 0
    assert a.stdout == b.stdout
    assert a.stdout != c.stdout


def test_inspect_and_bench_tiny():
    r = gemma("inspect", "-m", TINY4)
    assert r.returncode == 0, r.stderr
    assert "gemma4" in r.stdout and "full" in r.stdout and "sliding" in r.stdout and "Q8_0" in r.stdout
    r = gemma("bench", "-m", TINY4, "-p", "8", "-n", "4", "-r", "1")
    assert r.returncode == 0, r.stderr
    rows = [l for l in r.stdout.splitlines() if l.startswith("| model.gguf") or "| pp8 |" in l or "| tg4 |" in l]
    assert len(rows) == 2
    r = gemma("bench", "-m", TINY4, "-p", "8", "-n", "0", "-r", "1", "-o", "json")
    data = json.loads(r.stdout)
    assert data[0]["test"] == "pp8" and data[0]["avg_ts"] > 0


def test_chat_session_with_reset_and_exit():
    r = gemma("chat", "-m", TINY4, "-n", "4", "--temp", "0", stdin="hello\n/reset\nagain\n/exit\n")
    assert r.returncode == 0, r.stderr
    assert "(history cleared)" in r.stdout


@pytest.mark.skipif(not REAL, reason="GE_TEST_MODEL is not set (CI sets it)")
def test_real_model_greedy_english():
    r = gemma("run", "-m", REAL, "-p", "The capital of France is", "-n", "16", "--temp", "0")
    assert r.returncode == 0, r.stderr
    assert "the capital of the country of France" in r.stdout
    assert observer(r.stdout)["generated_tokens"] == 16


@pytest.mark.skipif(not REAL, reason="GE_TEST_MODEL is not set (CI sets it)")
def test_real_model_tokenize():
    r = gemma("tokenize", "-m", REAL, "-p", "Hello", "--bos")
    assert r.returncode == 0 and r.stdout.strip() == "[2, 9259]"
    r = gemma("tokenize", "-m", REAL, "-p", "<start_of_turn>user", "--special")
    ids = json.loads(r.stdout)
    assert ids[0] == 105


@pytest.mark.skipif(not REAL, reason="GE_TEST_MODEL is not set (CI sets it)")
def test_real_model_stop_string_ends_output_before_it():
    r = gemma("run", "-m", REAL, "-p", "The capital of France is", "-n", "40", "--temp", "0", "--stop", "largest")
    assert r.returncode == 0, r.stderr
    text = r.stdout.split("PyTorchObserver")[0]
    assert "the capital of the country of France" in text and "largest" not in text
    assert observer(r.stdout)["generated_tokens"] < 40


def test_quantize_at_load():
    f32 = ROOT / "tests/data/golden/gemma4_tiny/model-f32.gguf"
    r = gemma("run", "-m", f32, "-p", "abc", "--raw", "-n", "6", "--temp", "0", "--quantize", "int4-g32")
    assert r.returncode == 0, r.stderr
    assert observer(r.stdout)["prompt_tokens"] >= 2
    r = gemma("run", "-m", TINY4, "-p", "abc", "--raw", "-n", "6", "--quantize", "int4-g32")
    assert r.returncode == 1 and "already" in r.stderr
    r = gemma("run", "-m", f32, "-p", "abc", "--raw", "-n", "6", "--quantize", "int3")
    assert r.returncode == 1 and "--quantize" in r.stderr
