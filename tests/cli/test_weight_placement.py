"""`--no-repack` (cpu backend: GGUF Q4_0/Q8_0 weights read in place from the mapping) end to end:
in-place placement is printed once (repacking, the default, is silent), and greedy text on the real Gemma 3 270M model (GE_TEST_MODEL; its
Q8_0 embedding / LM head and attn_v go in place) is the same as with repacked weights."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEMMA = pathlib.Path(os.environ.get("GE_GEMMA_BIN", ROOT / "build" / "gemma"))
TINY3 = ROOT / "tests/data/golden/gemma3_tiny/model-q4_0.gguf"
REAL = os.environ.get("GE_TEST_MODEL", "")


def gemma(*args, timeout=300):
    return subprocess.run([str(GEMMA), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          errors="replace")


def greedy(model, extra, n=24):
    r = gemma("run", "-m", model, "-p", "The capital of France is", "-n", n, "--temp", 0, *extra)
    assert r.returncode == 0, r.stderr
    notes = [l for l in r.stderr.splitlines() if l.startswith("cpu: ")]
    assert len(notes) == (1 if extra else 0), r.stderr  # in place: printed once; repacked: silent
    return r.stdout.splitlines()[0], notes[0] if notes else ""


def test_placement_is_printed_once_and_text_matches_on_tiny_model():
    a, note_a = greedy(TINY3, [])
    b, note_b = greedy(TINY3, ["--no-repack"])
    assert note_a == "" and "in place" in note_b
    assert a == b


def test_bench_accepts_no_repack():
    r = gemma("bench", "-m", TINY3, "-p", 8, "-n", 4, "-r", 1, "--no-repack")
    assert r.returncode == 0, r.stderr
    assert "in place" in r.stderr and "tg4" in r.stdout


def test_real_model_greedy_text_same_in_place():
    if not REAL:
        pytest.skip("GE_TEST_MODEL is not set")
    assert os.access(REAL, os.R_OK), f"GE_TEST_MODEL={REAL} is not readable"
    a, _ = greedy(REAL, [], n=32)
    b, note = greedy(REAL, ["--no-repack"], n=32)
    assert "in place" in note
    assert a == b and len(a) > len("The capital of France is") + 20
