// `gemma quantize`: HF checkpoint → torchao INT4/INT8 safetensors or GGUF, one tensor at a time; plus
// `--dequantize-gguf` (GGUF → HF-layout reference), `--compare` (KL divergence of two checkpoints) and
// `--time-load` (Checkpoint::open + packing time).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_common.h"
#include "formats/gguf_reader.h"
#include "model/checkpoint.h"
#include "model/checkpoint_writer.h"
#include "model/gemma_model.h"
#include "quant/logit_divergence.h"
#include "tokenizer/tokenizer.h"

namespace ge::cli {

namespace {

using nlohmann::json;

double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Result<QuantType> parse_gguf_type(const std::string& t) {
  if (t == "q4_0") return QuantType::kQ4_0;
  if (t == "q8_0") return QuantType::kQ8_0;
  if (t == "q4_k") return QuantType::kQ4_K;
  if (t == "q6_k") return QuantType::kQ6_K;
  return invalid_argument("gemma quantize: --type must be q4_0, q8_0, q4_k or q6_k, got '" + t + "'");
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.good()) return io_error("cannot write '" + path + "'");
  return Status::ok();
}

json report_json(const QuantizeReport& r, double seconds) {
  json tensors = json::array();
  for (const TensorReport& t : r.tensors) {
    json e = {{"name", t.name}, {"encoding", t.encoding}, {"shape", {t.rows, t.cols}}, {"quantized", t.quantized}};
    if (t.quantized) {
      const double snr = t.stats.snr_db();
      e["snr_db"] = std::isfinite(snr) ? json(snr) : json(nullptr);
      e["max_abs_error"] = t.stats.max_abs_error;
    }
    tensors.push_back(e);
  }
  return {{"output", r.output_file},    {"output_bytes", r.output_bytes}, {"seconds", seconds},
          {"mean_snr_db", r.mean_snr_db()}, {"min_snr_db", r.min_snr_db()}, {"peak_rss_mb", peak_rss_mb()},
          {"notes", r.notes},           {"tensors", tensors}};
}

// Token ids for --compare: a golden tokens.json ({"tokens": [...]}) or a text file and a tokenizer.
Result<std::vector<int32_t>> compare_tokens(const Args& a) {
  if (a.has("tokens-json")) {
    GE_ASSIGN_OR_RETURN(std::string text, read_text_file(a.str("tokens-json")));
    try {
      return json::parse(text).at("tokens").get<std::vector<int32_t>>();
    } catch (const json::exception& e) {
      return format_error("--tokens-json: " + std::string(e.what()));
    }
  }
  if (!a.has("text") || !a.has("tokenizer")) {
    return invalid_argument("gemma quantize --compare: give --tokens-json FILE, or --text FILE with --tokenizer PATH");
  }
  GE_ASSIGN_OR_RETURN(std::string text, read_text_file(a.str("text")));
  const std::string tp = a.str("tokenizer");
  Result<Tokenizer> tok = tp.size() > 5 && tp.compare(tp.size() - 5, 5, ".gguf") == 0
                              ? [&]() -> Result<Tokenizer> {
                                  GE_ASSIGN_OR_RETURN(gguf::GgufFile f, gguf::GgufFile::open(tp));
                                  return Tokenizer::from_gguf(f);
                                }()
                              : Tokenizer::from_hf_json(tp);
  if (!tok.is_ok()) return tok.status();
  return tok->encode(text, /*add_bos=*/true, /*parse_special=*/false);
}

// Logits of every position of `tokens` under the checkpoint at `path`: [n, vocab].
Result<std::vector<float>> all_logits(const std::string& path, const std::vector<int32_t>& tokens,
                                      const std::string& backend_name, int threads, int32_t chunk, int64_t* vocab) {
  GE_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> cp, Checkpoint::open(path));
  GE_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, create_backend(backend_name, threads));
  GE_ASSIGN_OR_RETURN(std::unique_ptr<GemmaModel> model,
                      GemmaModel::create(cp->config(), cp->weights(), *backend, chunk));
  const int32_t n = static_cast<int32_t>(tokens.size());
  GE_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, model->create_kv_cache(n));
  *vocab = cp->config().vocab_size;
  for (int32_t t : tokens) {
    if (t < 0 || t >= *vocab) return invalid_argument("--compare: token id " + std::to_string(t) + " is out of the vocabulary");
  }
  std::vector<float> out(static_cast<size_t>(n) * static_cast<size_t>(*vocab));
  for (int32_t p = 0; p < n; p += chunk) {
    const int32_t m = std::min(chunk, n - p);
    GE_RETURN_IF_ERROR(model->forward(*cache, tokens.data() + p, m, p, LogitsMode::kAll,
                                      out.data() + static_cast<size_t>(p) * static_cast<size_t>(*vocab)));
  }
  return out;
}

int run_compare(const Args& a, int threads) {
  auto tokens = compare_tokens(a);
  if (!tokens.is_ok()) return fail(tokens.status());
  auto max_tokens = a.integer("max-tokens", 1, 1 << 20);
  auto chunk = a.integer("chunk", 1, 65536);
  if (!max_tokens.is_ok()) return fail(max_tokens.status());
  if (!chunk.is_ok()) return fail(chunk.status());
  if (static_cast<int64_t>(tokens->size()) > *max_tokens) tokens->resize(static_cast<size_t>(*max_tokens));
  if (tokens->empty()) return fail(invalid_argument("--compare: no tokens"));
  int64_t v_ref = 0, v_test = 0;
  const std::string backend = a.has("backend") ? a.str("backend") : "cpu-ref";
  auto ref = all_logits(a.str("compare"), *tokens, backend, threads, static_cast<int32_t>(*chunk), &v_ref);
  if (!ref.is_ok()) return fail(ref.status());
  auto test = all_logits(a.str("input"), *tokens, backend, threads, static_cast<int32_t>(*chunk), &v_test);
  if (!test.is_ok()) return fail(test.status());
  if (v_ref != v_test) return fail(invalid_argument("--compare: the two checkpoints have different vocabularies"));
  const LogitDivergence d = compare_logits(ref->data(), test->data(), static_cast<int64_t>(tokens->size()), v_ref);
  const json j = {{"reference", a.str("compare")}, {"test", a.str("input")},  {"positions", d.positions},
                  {"mean_kl", d.mean_kl},          {"max_kl", d.max_kl},      {"top1_agreement", d.top1_agreement},
                  {"max_abs_logit_diff", d.max_abs_logit_diff}, {"backend", backend}};
  if (a.has("stats")) {
    if (Status s = write_text(a.str("stats"), j.dump(2) + "\n"); !s.is_ok()) return fail(s);
  }
  std::printf("KL(ref ‖ test) mean %.6g max %.6g nats over %lld positions; top-1 agreement %.1f%%; max |Δlogit| %.4g\n",
              d.mean_kl, d.max_kl, static_cast<long long>(d.positions), 100.0 * d.top1_agreement,
              d.max_abs_logit_diff);
  return 0;
}

// Times Checkpoint::open plus packing every weight for a backend (GemmaModel::create), repeated so
// that all but the first run read from a warm page cache.
int run_time_load(const Args& a, int threads) {
  auto reps = a.integer("repetitions", 1, 100);
  if (!reps.is_ok()) return fail(reps.status());
  const std::string backend_name = a.has("backend") ? a.str("backend") : "cpu";
  double best = 1e30;
  for (int64_t r = 0; r < *reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    auto cp = Checkpoint::open(a.str("input"));
    if (!cp.is_ok()) return fail(cp.status());
    const double open_s = seconds_since(t0);
    auto backend = create_backend(backend_name, threads);
    if (!backend.is_ok()) return fail(backend.status());
    const auto t1 = std::chrono::steady_clock::now();
    auto model = GemmaModel::create((*cp)->config(), (*cp)->weights(), **backend, 1);
    if (!model.is_ok()) return fail(model.status());
    const double pack_s = seconds_since(t1), total = seconds_since(t0);
    const double gb = static_cast<double>((*cp)->weight_bytes()) / 1e9;
    best = std::min(best, total);
    std::printf("run %lld: open %.3f s, pack (%s, %d threads) %.3f s, total %.3f s: %.2f GB of weights at %.2f GB/s "
                "(packed %.2f GB)\n",
                static_cast<long long>(r + 1), open_s, backend_name.c_str(), threads, pack_s, total, gb, gb / total,
                static_cast<double>((*model)->packed_weight_bytes()) / 1e9);
    std::fflush(stdout);
  }
  std::printf("best %.3f s; peak RSS %.0f MB\n", best, peak_rss_mb());
  return 0;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  Args a("gemma quantize",
         "gemma quantize -i HF_DIR_OR_FILE -o OUT [--format torchao|gguf] [--type q4_0|q8_0|q4_k|q6_k]\n"
         "                      [--method minmax|hqq] [--recipe default|sensitive] [--group-size 32|64|128]\n"
         "       gemma quantize --dequantize-gguf -i MODEL.gguf -o OUT_DIR [--bf16]\n"
         "       gemma quantize --compare REF -i TEST (--tokens-json F | --text F --tokenizer T)\n"
         "       gemma quantize --time-load -i CHECKPOINT [--backend cpu] [-r 3]");
  a.option("input", "i", "PATH", "HF checkpoint directory (config.json + safetensors, sharded or not) or .safetensors file");
  a.option("output", "o", "PATH", "output directory (torchao) or .gguf file");
  a.option("format", "f", "FMT", "torchao (ExecuTorch's Int4Tensor/IntxUnpackedToInt8Tensor safetensors) or gguf",
           "torchao");
  a.option("type", "", "T", "GGUF type of the INT4 slots: q4_0, q8_0, q4_k, q6_k (INT8 slots are Q8_0)", "q4_k");
  a.option("method", "", "M", "INT4 method (torchao): minmax or hqq", "minmax");
  a.option("recipe", "", "R", "default (all linears INT4) or sensitive (edge v_proj/down_proj INT8)", "default");
  a.option("group-size", "g", "N", "INT4 group size along K (torchao): 32, 64 or 128", "32");
  a.flag("int4-lm-head", "untie the LM head and store it INT4 (the embedding stays INT8)");
  a.option("tokenizer-gguf", "", "FILE", "GGUF whose tokenizer.* keys are copied into a GGUF output");
  a.option("threads", "t", "N", "threads (0 = all cores)", "0");
  a.flag("force", "replace an existing output");
  a.option("stats", "", "FILE", "write a JSON report (per-tensor SNR, sizes, peak RSS; or the --compare result)");
  a.flag("quiet", "no per-tensor lines");
  a.flag("keep-source-pages", "do not drop the source's mapped pages once read (diagnostics: RSS then grows with the input)");
  a.flag("dequantize-gguf", "write the GGUF given by -i as an HF-layout checkpoint directory (F32, or --bf16)");
  a.flag("bf16", "with --dequantize-gguf: BF16 instead of F32");
  a.option("compare", "", "REF", "report KL(REF ‖ INPUT) of next-token distributions instead of quantizing");
  a.option("tokens-json", "", "FILE", "--compare: token ids, {\"tokens\": [...]}");
  a.option("text", "", "FILE", "--compare: text to tokenize with --tokenizer");
  a.option("tokenizer", "", "PATH", "--compare: a .gguf or tokenizer.json");
  a.option("max-tokens", "", "N", "--compare: positions evaluated", "256");
  a.option("backend", "", "NAME", "--compare: cpu-ref (default) or cpu; --time-load: cpu (default), cpu-ref, cuda");
  a.option("chunk", "", "N", "--compare: tokens per forward pass", "64");
  a.flag("time-load", "time Checkpoint::open + packing of the checkpoint given by -i (--backend, default cpu)");
  a.option("repetitions", "r", "N", "--time-load: runs (the first may read from disk)", "3");
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  auto threads = a.integer("threads", 0, 1024);
  if (!threads.is_ok()) return fail(threads.status());
  const int n_threads =
      *threads > 0 ? static_cast<int>(*threads) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!a.has("input")) return fail(invalid_argument("gemma quantize: missing -i INPUT"));
  if (a.has("compare")) return run_compare(a, n_threads);
  if (a.on("time-load")) return run_time_load(a, n_threads);
  if (!a.has("output")) return fail(invalid_argument("gemma quantize: missing -o OUTPUT"));
  const auto t0 = std::chrono::steady_clock::now();

  if (a.on("dequantize-gguf")) {
    Status s = dequantize_gguf_to_hf(a.str("input"), a.str("output"), a.on("bf16"), a.on("force"), n_threads);
    if (!s.is_ok()) return fail(s);
    std::printf("wrote %s (config.json + model.safetensors, %s) in %.1f s\n", a.str("output").c_str(),
                a.on("bf16") ? "BF16" : "F32", seconds_since(t0));
    return 0;
  }

  QuantizeOptions o;
  o.n_threads = n_threads;
  o.force = a.on("force");
  o.tokenizer_gguf = a.str("tokenizer-gguf");
  o.release_source_pages = !a.on("keep-source-pages");
  const std::string format = a.str("format");
  if (format == "torchao") {
    o.format = ExportFormat::kTorchao;
  } else if (format == "gguf") {
    o.format = ExportFormat::kGguf;
  } else {
    return fail(invalid_argument("gemma quantize: --format must be torchao or gguf, got '" + format + "'"));
  }
  if (o.format == ExportFormat::kGguf) {
    // The GGUF encodings are ggml's own quantizers: an INT4 method or group size would be ignored.
    if (a.has("method") || a.has("group-size")) {
      return fail(invalid_argument("gemma quantize: --method and --group-size apply to --format torchao; "
                                   "GGUF uses --type"));
    }
    auto t = parse_gguf_type(a.str("type"));
    if (!t.is_ok()) return fail(t.status());
    o.gguf_type = *t;
  } else if (a.has("type") || a.has("tokenizer-gguf")) {
    return fail(invalid_argument("gemma quantize: --type and --tokenizer-gguf apply to --format gguf"));
  }
  auto recipe = parse_recipe_kind(a.str("recipe"));
  auto method = parse_quant_method(a.str("method"));
  auto group = a.integer("group-size", 1, 1 << 20);
  if (!recipe.is_ok()) return fail(recipe.status());
  if (!method.is_ok()) return fail(method.status());
  if (!group.is_ok()) return fail(group.status());
  o.recipe.kind = *recipe;
  o.recipe.method = *method;
  o.recipe.group_size = *group;
  o.recipe.int4_lm_head = a.on("int4-lm-head");

  const bool quiet = a.on("quiet");
  auto on_tensor = [&](const TensorReport& t) {
    if (quiet) return;
    if (t.quantized) {
      std::printf("  %-48s %-18s [%lld, %lld]  SNR %6.2f dB\n", t.name.c_str(), t.encoding.c_str(),
                  static_cast<long long>(t.rows), static_cast<long long>(t.cols), t.stats.snr_db());
    } else {
      std::printf("  %-48s %-18s [%lld]\n", t.name.c_str(), t.encoding.c_str(), static_cast<long long>(t.cols));
    }
    std::fflush(stdout);
  };
  Result<QuantizeReport> r = quantize_checkpoint(a.str("input"), a.str("output"), o, on_tensor);
  if (!r.is_ok()) return fail(r.status());
  const double secs = seconds_since(t0);
  for (const std::string& n : r->notes) std::printf("note: %s\n", n.c_str());
  int quantized = 0;
  for (const TensorReport& t : r->tensors) quantized += t.quantized ? 1 : 0;
  std::printf("wrote %s (%.1f MB) in %.1f s: %d of %zu tensors quantized, SNR mean %.2f dB, min %.2f dB; "
              "peak RSS %.0f MB\n",
              r->output_file.c_str(), static_cast<double>(r->output_bytes) / 1e6, secs, quantized, r->tensors.size(),
              r->mean_snr_db(), r->min_snr_db(), peak_rss_mb());
  if (a.has("stats")) {
    if (Status s = write_text(a.str("stats"), report_json(*r, secs).dump(2) + "\n"); !s.is_ok()) return fail(s);
  }
  return 0;
}

}  // namespace ge::cli
