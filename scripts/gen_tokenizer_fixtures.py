#!/usr/bin/env python3
"""Generates the tokenizer test fixtures under tests/data/tokenizer/.

1. gemma3_parity.bin: >= 5,000 strings (fixed seed) with the token ids HF `tokenizers` gives for the
   Gemma 3 vocabulary, without BOS, once with special-token literals recognised (HF's default) and
   once with them split (`encode_special_tokens = True`). The reference tokenizer is built by
   transformers from the GGUF file itself (AutoTokenizer.from_pretrained(dir, gguf_file=...)), so
   the C++ test can rebuild its tokenizer from the same file (GE_TEST_MODEL) and compare.
2. tiny_tokenizer.json + tiny_expected.json: a small Gemma-shaped BPE tokenizer.json (byte
   fallback, added tokens, "▁" escaping) and HF's ids for a few strings, for from_hf_json tests.

Needs: transformers (only to convert the GGUF), tokenizers, gguf. CI does not run this script; it
uses the committed outputs.

Binary format of gemma3_parity.bin (little endian):
  magic "GETKPAR1", u32 record count, then per record:
  u8 flags (bit 0: a separate id list for parse_special = false follows),
  u32 text byte length, UTF-8 text, u32 id count, ids as LEB128 varints,
  [u32 id count, varint ids]  -- only when flag bit 0 is set
"""

import argparse
import json
import os
import random
import shutil
import struct
import sys
import tempfile

SEED = 20250601
SPACE = "\u2581"

WORDS = (
    "the of and to in is was for on that with as by at from his her it an were are which this be or "
    "has had not but have one their its new first after also who two been they more other all when "
    "time into there would can many some these only about people world state city school year work "
    "model token engine inference memory cache layer attention weight tensor kernel thread buffer "
    "Hello World Python Gemma Google London Paris Tokyo Berlin Monday January question answer "
    "don't can't won't it's we're they've I'm you'll she'd o'clock naïve café résumé coöperate "
    "straße Übermensch façade jalapeño piñata smörgåsbord crème brûlée déjà vu"
).split()

SCRIPT_SAMPLES = [
    "Привет, как дела? Это тестовая строка на русском языке.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "नमस्ते दुनिया। यह हिंदी में एक परीक्षण वाक्य है।",
    "मराठी भाषेत विद्यार्थ्यांनी परीक्षा दिली.",
    "مرحبا بالعالم. هذه جملة اختبار باللغة العربية.",
    "السَّلَامُ عَلَيْكُمْ وَرَحْمَةُ اللهِ",
    "日本語のテキストを正しくトークン化できるか確認します。",
    "你好，世界！这是一个中文测试句子。",
    "안녕하세요, 세계! 이것은 한국어 테스트 문장입니다.",
    "Γειά σου Κόσμε! Αυτή είναι μια δοκιμαστική πρόταση.",
    "שלום עולם! זהו משפט בדיקה בעברית.",
    "สวัสดีชาวโลก นี่คือประโยคทดสอบภาษาไทย",
    "வணக்கம் உலகம்! இது ஒரு சோதனை வாக்கியம்.",
    "হ্যালো বিশ্ব! এটি একটি পরীক্ষামূলক বাক্য।",
    "Xin chào thế giới! Đây là một câu kiểm tra tiếng Việt.",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "ሰላም ለዓለም! ይህ የሙከራ ዓረፍተ ነገር ነው።",
    "გამარჯობა მსოფლიო!",
    "Բարեւ աշխարհ!",
]

SCRIPT_RANGES = {
    "cjk": [(0x4E00, 0x9FA5), (0x3041, 0x3096), (0x30A1, 0x30FA), (0xAC00, 0xD7A3), (0x3000, 0x303F),
            (0xFF01, 0xFF5E)],
    "arabic": [(0x0600, 0x06FF), (0x0750, 0x077F)],
    "devanagari": [(0x0900, 0x097F)],
    "cyrillic": [(0x0400, 0x04FF)],
    "greek": [(0x0370, 0x03FF)],
    "hebrew": [(0x0590, 0x05FF)],
    "thai": [(0x0E00, 0x0E7F)],
    "latin_ext": [(0x00C0, 0x024F), (0x1E00, 0x1EFF)],
    "combining": [(0x0300, 0x036F)],
}

EMOJI_RANGES = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
                (0x2600, 0x26FF), (0x2700, 0x27BF), (0x1FA70, 0x1FAFF)]
ZWJ_SEQUENCES = [
    "👨\u200d👩\u200d👧\u200d👦", "👩\u200d❤️\u200d👨", "🏳️\u200d🌈", "🏴\u200d☠️", "👩🏽\u200d💻",
    "🧑🏿\u200d🚀", "👁️\u200d🗨️", "🐻\u200d❄️", "❤️\u200d🔥", "🧔🏻\u200d♂️", "1️⃣", "#️⃣", "🇯🇵", "🇺🇸",
    "🇪🇺", "👍🏼", "✌🏾", "🤌🏻", "\u263a\ufe0f", "\u2764\ufe0e",
]

WHITESPACE = [" ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2003", "\u2009", "\x0b", "\x0c",
              "\u200b", "\u2028", SPACE]

CONTROL_LITERALS = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>",
                    "[multimodal]", "<start_of_image>", "<end_of_image>", "<unused0>", "<unused6241>"]
NEAR_LITERALS = ["<start_of_tur", "start_of_turn>", "<end_of_turn", "< bos>", "<BOS>", "<<bos>>", "<bos",
                 "<0x41>", "<0xZZ>", "<0x0A>", "<unused>", "<unused99999>", "<start_of_turn >", "<|turn>"]

CODE_TEMPLATES = [
    "def {f}({a}, {b}):\n    \"\"\"{doc}\"\"\"\n    if {a} > {n}:\n        return {a} * {b}\n    return {f}({b}, {a} - 1)\n",
    "#include <vector>\n\nint {f}(const std::vector<int>& {a}) {{\n  int {b} = {n};\n  for (int x : {a}) {b} += x;\n  return {b};\n}}\n",
    "function {f}({a}) {{\n\tconst {b} = [{n}, {n2}];\n\treturn {a}.map((x) => x + {b}[0]);\n}}\n",
    "<div class=\"{f}\">\n  <table>\n    <tr><td>{a}</td><td>{n}</td></tr>\n  </table>\n</div>\n",
    "{{\"{f}\": {n}, \"{a}\": [\"{b}\", null, true, {n2}.5e-3], \"nested\": {{\"k\": \"{doc}\"}}}}",
    "SELECT {a}, COUNT(*) AS {b}\nFROM {f}\nWHERE {a} >= {n}\nGROUP BY {a}\nORDER BY {b} DESC;\n",
    "fn {f}(&mut self, {a}: u32) -> Result<(), Error> {{\n    self.{b} += {a} as u64; // {doc}\n    Ok(())\n}}\n",
    "for i in range({n}):\n\tprint(f\"{{i:>4}} {a}={{i*{n2}}}\")\n\n\n",
    "<?xml version=\"1.0\"?>\n<{f} id=\"{n}\">\n\t<{a}>{doc}</{a}>\n</{f}>\n",
    "$ {f} --{a}={n} | grep -E '^[a-z]+$' > /tmp/{b}.log 2>&1 &&\\\n  echo done\n",
]


def rand_word(r):
    return r.choice(WORDS)


def rand_ident(r):
    w = [rand_word(r).lower().strip("'") for _ in range(r.randint(1, 3))]
    return r.choice(["_".join(w), "".join(x.capitalize() for x in w), w[0]])


def rand_range_char(r, ranges):
    lo, hi = r.choice(ranges)
    return chr(r.randint(lo, hi))


def gen_latin(r):
    words = [rand_word(r) for _ in range(r.randint(1, 30))]
    if r.random() < 0.5:
        words[0] = words[0].capitalize()
    text = " ".join(words)
    for _ in range(r.randint(0, 4)):
        pos = r.randint(0, len(text))
        text = text[:pos] + r.choice([",", ".", "!", "?", ";", ":", " -", "(", ")", "\"", "'"]) + text[pos:]
    return text + r.choice(["", ".", "!", "?", "\n", " "])


def gen_script(r):
    if r.random() < 0.4:
        s = r.choice(SCRIPT_SAMPLES)
        if r.random() < 0.5:
            a = r.randint(0, len(s))
            b = r.randint(a, len(s))
            s = s[a:b]
        return s
    ranges = SCRIPT_RANGES[r.choice(list(SCRIPT_RANGES))]
    out = []
    for _ in range(r.randint(1, 12)):
        out.append("".join(rand_range_char(r, ranges) for _ in range(r.randint(1, 8))))
    return r.choice([" ", "", "、", "، "]).join(out)


def gen_mixed_scripts(r):
    parts = [r.choice([gen_latin, gen_script, gen_emoji, gen_numbers])(r) for _ in range(r.randint(2, 5))]
    return r.choice([" ", "", "\n", " | "]).join(parts)


def gen_emoji(r):
    out = []
    for _ in range(r.randint(1, 10)):
        k = r.random()
        if k < 0.4:
            out.append(r.choice(ZWJ_SEQUENCES))
        elif k < 0.8:
            out.append(rand_range_char(r, EMOJI_RANGES))
        else:
            out.append(rand_word(r))
        if r.random() < 0.2:
            out.append(chr(r.randint(0x1F3FB, 0x1F3FF)))
    return r.choice(["", " ", "\n"]).join(out)


def gen_whitespace(r):
    out = []
    for _ in range(r.randint(1, 12)):
        k = r.random()
        if k < 0.35:
            out.append(" " * r.randint(1, 80))
        elif k < 0.5:
            out.append("\t" * r.randint(1, 40))
        elif k < 0.65:
            out.append("\n" * r.randint(1, 40))
        elif k < 0.85:
            out.append("".join(r.choice(WHITESPACE) for _ in range(r.randint(1, 20))))
        else:
            out.append(rand_word(r))
    return "".join(out)


def gen_code(r):
    t = r.choice(CODE_TEMPLATES)
    s = t.format(f=rand_ident(r), a=rand_ident(r), b=rand_ident(r), n=r.randint(0, 10**6), n2=r.randint(0, 999),
                 doc=gen_latin(r).replace("\n", " ").replace('"', "'"))
    if r.random() < 0.3:
        s = s.replace("    ", "\t")
    if r.random() < 0.2:
        s = s.replace("\n", "\r\n")
    return s


def gen_numbers(r):
    k = r.randint(0, 9)
    if k == 0:
        return str(r.randint(0, 10**r.randint(1, 30)))
    if k == 1:
        return f"{r.uniform(-1e6, 1e6):.{r.randint(0, 10)}f}"
    if k == 2:
        return f"{r.uniform(-1, 1):e}"
    if k == 3:
        return f"{r.randint(1900, 2100)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00Z"
    if k == 4:
        return f"+{r.randint(1, 99)} ({r.randint(100, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}"
    if k == 5:
        return f"{r.randint(0, 10**9):,}".replace(",", r.choice([",", ".", " ", "\u202f", "'"]))
    if k == 6:
        return "".join(r.choice("0123456789") for _ in range(r.randint(50, 300)))
    if k == 7:
        return f"${r.randint(0, 9999)}.{r.randint(0, 99):02d} €{r.randint(0, 999)} ¥{r.randint(0, 99999)} {r.randint(0, 100)}%"
    if k == 8:
        return " ".join(str(r.randint(-1000, 1000)) for _ in range(r.randint(2, 20)))
    return "".join(chr(r.randint(0xFF10, 0xFF19)) for _ in range(r.randint(1, 10)))  # fullwidth digits


def gen_special(r, user_defined):
    parts = []
    for _ in range(r.randint(1, 8)):
        k = r.random()
        if k < 0.3:
            parts.append(r.choice(CONTROL_LITERALS))
        elif k < 0.4:
            parts.append(f"<unused{r.randint(0, 6241)}>")
        elif k < 0.55:
            parts.append(r.choice(NEAR_LITERALS))
        elif k < 0.7:
            parts.append(r.choice(user_defined))
        else:
            parts.append(gen_latin(r))
    sep = r.choice(["", " ", "\n"])
    text = sep.join(parts)
    if r.random() < 0.3:
        text = f"<start_of_turn>user\n{gen_latin(r)}<end_of_turn>\n<start_of_turn>model\n{text}<end_of_turn>\n"
    return text


def gen_unicode(r):
    out = []
    for _ in range(r.randint(1, 20)):
        plane = r.random()
        if plane < 0.1:
            cp = r.randint(0, 0x7F)
        elif plane < 0.6:
            cp = r.randint(0x80, 0xFFFF)
        elif plane < 0.9:
            cp = r.randint(0x10000, 0x2FFFF)
        else:
            cp = r.choice([r.randint(0xE0000, 0xE01EF), r.randint(0xF0000, 0x10FFFF), 0xFFFD, 0xFEFF, 0xFFFE])
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xFFFD
        out.append(chr(cp))
    return "".join(out)


def gen_vocab_soup(r, pieces):
    return "".join(r.choice(pieces) for _ in range(r.randint(1, 25)))


def gen_repeats(r):
    unit = r.choice(["a", "ab", "!", ".", "-", "=", "▁", " a", "\u4e2d", "😀", "0", "aa ", "\t ", " \n"])
    return unit * r.randint(1, 2000)


def gen_long(r, target, gen):
    out = []
    n = 0
    while n < target:
        s = gen(r)
        out.append(s)
        n += len(s.encode("utf-8"))
    text = "".join(out).encode("utf-8")[:target].decode("utf-8", errors="ignore")
    return text


def build_reference(gguf_path, work_dir):
    from transformers import AutoTokenizer

    os.symlink(os.path.abspath(gguf_path), os.path.join(work_dir, "model.gguf"))
    hf = AutoTokenizer.from_pretrained(work_dir, gguf_file="model.gguf")
    path = os.path.join(work_dir, "tokenizer.json")
    hf.backend_tokenizer.save(path)
    return path


def check_reference(tok):
    # The official Gemma 3 tokenizer adds no dummy prefix: "Hello" is one token, " Hello" another.
    hello = tok.encode("Hello", add_special_tokens=False)
    assert hello.tokens == ["Hello"], hello.tokens
    assert tok.encode(" Hello", add_special_tokens=False).tokens == [SPACE + "Hello"]
    assert tok.normalizer is not None and "Prepend" not in json.dumps(json.loads(tok.to_str())["normalizer"])


def put_varints(buf, ids):
    for v in ids:
        assert v >= 0
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                buf.append(b | 0x80)
            else:
                buf.append(b)
                break


def write_parity(path, texts, ids_special, ids_plain):
    buf = bytearray(b"GETKPAR1")
    buf += struct.pack("<I", len(texts))
    for text, a, b in zip(texts, ids_special, ids_plain):
        data = text.encode("utf-8")
        differ = a != b
        buf.append(1 if differ else 0)
        buf += struct.pack("<I", len(data)) + data
        buf += struct.pack("<I", len(a))
        put_varints(buf, a)
        if differ:
            buf += struct.pack("<I", len(b))
            put_varints(buf, b)
    with open(path, "wb") as f:
        f.write(buf)
    return len(buf)


def gen_parity(gguf_path, out_dir):
    from tokenizers import Tokenizer

    work = tempfile.mkdtemp()
    try:
        tok = Tokenizer.from_file(build_reference(gguf_path, work))
        plain = Tokenizer.from_file(os.path.join(work, "tokenizer.json"))
    finally:
        shutil.rmtree(work)
    plain.encode_special_tokens = True
    check_reference(tok)

    vocab = tok.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    added = {a.content: a for _, a in sorted(tok.get_added_tokens_decoder().items())}
    user_defined = [c for c, a in added.items() if not a.special]
    pieces = [t.replace(SPACE, " ") for t, i in by_id if t not in added and not (t.startswith("<0x") and len(t) == 6)]

    r = random.Random(SEED)
    generators = [
        (gen_latin, 700), (gen_script, 900), (gen_mixed_scripts, 400), (gen_emoji, 400), (gen_whitespace, 500),
        (gen_code, 400), (gen_numbers, 400), (lambda r: gen_special(r, user_defined), 600), (gen_unicode, 400),
        (lambda r: gen_vocab_soup(r, pieces), 700), (gen_repeats, 150),
    ]
    texts = ["", " ", "Hello", " Hello", "Hello world", "  Hello", "\n", "\n\n\n", "a   b", "▁", "▁▁x", "\t\tfoo",
             "<start_of_turn>user\nHi<end_of_turn>\n"]
    for gen, count in generators:
        texts.extend(gen(r) for _ in range(count))
    # Very long inputs (100 KB each).
    texts.append(gen_long(r, 100_000, gen_mixed_scripts))
    texts.append(gen_long(r, 100_000, lambda r: gen_vocab_soup(r, pieces)))
    texts.append(gen_long(r, 100_000, lambda r: gen_code(r) + gen_whitespace(r)))
    texts.append("a" * 100_000)

    ids_special = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    ids_plain = [e.ids for e in plain.encode_batch(texts, add_special_tokens=False)]
    size = write_parity(os.path.join(out_dir, "gemma3_parity.bin"), texts, ids_special, ids_plain)
    n_diff = sum(a != b for a, b in zip(ids_special, ids_plain))
    print(f"gemma3_parity.bin: {len(texts)} strings, {sum(map(len, ids_special))} ids, "
          f"{n_diff} differ without special parsing, {size} bytes")


def gen_tiny(out_dir):
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    corpus = [
        "the quick brown fox jumps over the lazy dog",
        "hello world, hello tokenizer; the world is large",
        "tokenization of text into tokens with byte fallback",
        "def hello():\n    return 'world'\n",
        "  indented  text\twith tabs and   spaces",
        "numbers 12345 and 2024-01-01",
    ] * 20
    trainer_tok = Tokenizer(BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizers.Replace(" ", SPACE)
    trainer = BpeTrainer(vocab_size=200, special_tokens=["<unk>"], show_progress=False)
    trainer_tok.train_from_iterator(corpus, trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    learned = [t for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]) if t != "<unk>"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in trained["merges"]]

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    user = ["\n\n", "<table>"]
    tokens = specials + user + [f"<0x{b:02X}>" for b in range(256)] + learned
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    path = os.path.join(out_dir, "tiny_tokenizer.json")
    tok.save(path)

    plain = Tokenizer.from_file(path)
    plain.encode_special_tokens = True
    cases = []
    for text in ["hello world", "the lazy dog\n\nzebra ünïcode 中文 😀", "<start_of_turn>user\nhi<end_of_turn>",
                 "  indented\ttabs", "<table><bos>x", "", "   ", "return 'world'"]:
        cases.append({
            "text": text,
            "ids": tok.encode(text, add_special_tokens=False).ids,
            "ids_with_bos": tok.encode(text, add_special_tokens=True).ids,
            "ids_no_special": plain.encode(text, add_special_tokens=False).ids,
        })
    with open(os.path.join(out_dir, "tiny_expected.json"), "w", encoding="utf-8") as f:
        f.write('{"cases": [\n' + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]}\n")
    print(f"tiny_tokenizer.json: {len(tokens)} tokens, {len(merges)} merges, {len(cases)} cases")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gguf", default=os.environ.get("GE_TEST_MODEL", "/work/models/gemma-3-270m-q4_k_m.gguf"))
    p.add_argument("--out-dir", default=os.path.join(root, "tests", "data", "tokenizer"))
    p.add_argument("--skip-parity", action="store_true", help="only regenerate the tiny tokenizer.json fixture")
    args = p.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    gen_tiny(args.out_dir)
    if not args.skip_parity:
        if not os.path.exists(args.gguf):
            sys.exit(f"GGUF not found: {args.gguf} (pass --gguf or set GE_TEST_MODEL)")
        gen_parity(args.gguf, args.out_dir)


if __name__ == "__main__":
    main()
