// `gemma inspect` (architecture, layer table, tensor types, memory) and `gemma tokenize`.
#include <cstdio>
#include <iostream>
#include <map>

#include "cli_common.h"
#include "formats/gguf_reader.h"
#include "model/checkpoint.h"
#include "tokenizer/tokenizer.h"

namespace ge::cli {

namespace {

Result<Tokenizer> load_tokenizer(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    GE_ASSIGN_OR_RETURN(gguf::GgufFile f, gguf::GgufFile::open(path));
    return Tokenizer::from_gguf(f);
  }
  const std::string json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0 ? path : path + "/tokenizer.json";
  return Tokenizer::from_hf_json(json);
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  Args a("gemma tokenize", "gemma tokenize -m MODEL -p TEXT [--bos] [--special] [--pieces]");
  a.option("model", "m", "PATH", "a .gguf file, tokenizer.json, or an HF checkpoint directory");
  a.option("prompt", "p", "TEXT", "text to tokenize");
  a.flag("bos", "prepend BOS");
  a.flag("special", "parse special-token literals such as <start_of_turn>");
  a.flag("pieces", "print id and piece on each line");
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  if (!a.has("model") || !a.has("prompt")) return fail(invalid_argument("gemma tokenize: needs -m MODEL and -p TEXT"));
  Result<Tokenizer> tok = load_tokenizer(a.str("model"));
  if (!tok.is_ok()) return fail(tok.status());
  const std::vector<int32_t> ids = tok->encode(a.str("prompt"), a.on("bos"), a.on("special"));
  if (a.on("pieces")) {
    for (int32_t id : ids) std::cout << id << "\t" << tok->token_text(id) << "\n";
  } else {
    std::cout << "[";
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? ", " : "") << ids[i];
    std::cout << "]\n";
  }
  return 0;
}

int cmd_inspect(int argc, char** argv) {
  Args a("gemma inspect", "gemma inspect -m MODEL [-c CTX]");
  a.option("model", "m", "PATH", "model: .gguf file or HF checkpoint directory");
  a.option("ctx", "c", "N", "context length for the KV-cache estimate", "4096");
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  if (!a.has("model")) return fail(invalid_argument("gemma inspect: needs -m MODEL"));
  Result<int64_t> ctx = a.integer("ctx", 1, 1 << 22);
  if (!ctx.is_ok()) return fail(ctx.status());
  Result<std::unique_ptr<Checkpoint>> cp = Checkpoint::open(a.str("model"));
  if (!cp.is_ok()) return fail(cp.status());
  const GemmaConfig& c = (*cp)->config();
  const ModelWeights& w = (*cp)->weights();
  std::printf("model:       %s\n", a.str("model").c_str());
  std::printf("format:      %s\n", (*cp)->format() == CheckpointFormat::kGguf ? "gguf"
                                   : (*cp)->format() == CheckpointFormat::kTorchao ? "torchao safetensors"
                                                                                    : "safetensors");
  std::printf("config:      %s\n", c.summary().c_str());
  std::printf("attention:   query scale %.6g, final softcap %.3g, layer scalars %s, eps %g\n", c.query_scale,
              c.final_logit_softcapping, c.has_layer_scalar ? "yes" : "no", c.rms_norm_eps);
  std::printf("\n layer  type     head_dim  kv_heads  k=v  rope_theta  rotary  scale  layer_scalar\n");
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerConfig& l = c.layers[i];
    std::printf(" %5zu  %-7s  %8d  %8d  %-3s  %10.0f  %6.2f  %5.2f  %12.5g\n", i, l.sliding ? "sliding" : "full",
                l.head_dim, l.num_key_value_heads, l.k_eq_v ? "yes" : "no", static_cast<double>(l.rope_theta),
                static_cast<double>(l.partial_rotary_factor), static_cast<double>(l.rope_factor),
                static_cast<double>(w.layers[i].layer_scalar));
  }
  std::map<std::string, int> types;
  auto count = [&](const QuantWeight& q) {
    if (q.data != nullptr) types[quant_type_name(q.type)]++;
  };
  count(w.embed_tokens);
  count(w.lm_head);
  for (const auto& l : w.layers)
    for (const QuantWeight* q : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      count(*q);
  std::printf("\nmatrix types:");
  for (const auto& [t, n] : types) std::printf(" %s×%d", t.c_str(), n);
  // KV cache: sliding layers hold window + chunk positions, full layers the whole context (fp32 on CPU).
  uint64_t kv = 0;
  for (const auto& l : c.layers) {
    const uint64_t slots = l.sliding ? std::min<uint64_t>(static_cast<uint64_t>(*ctx), static_cast<uint64_t>(c.sliding_window) + 256)
                                     : static_cast<uint64_t>(*ctx);
    kv += 2 * slots * static_cast<uint64_t>(l.num_key_value_heads) * static_cast<uint64_t>(l.head_dim) * 4;
  }
  std::printf("\nmemory:      weights %.1f MiB, KV cache at %lld tokens %.1f MiB (fp32)\n",
              static_cast<double>((*cp)->weight_bytes()) / 1048576.0, static_cast<long long>(*ctx), static_cast<double>(kv) / 1048576.0);
  if (const gguf::GgufFile* g = (*cp)->gguf()) {
    Result<Tokenizer> tok = Tokenizer::from_gguf(*g);
    if (tok.is_ok())
      std::printf("tokenizer:   %d tokens, bos %d, eos %d\n", tok->n_vocab(), tok->bos_id(), tok->eos_id());
    else
      std::printf("tokenizer:   (%s)\n", tok.status().to_string().c_str());
    Result<std::string> tmpl = g->get_string("tokenizer.chat_template");
    std::printf("template:    %s\n", tmpl.is_ok() ? (std::to_string(tmpl->size()) + " bytes embedded").c_str() : "none embedded (built-in Gemma format)");
  }
  return 0;
}

}  // namespace ge::cli
