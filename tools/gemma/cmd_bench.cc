// `gemma bench`: prefill (pp) and decode (tg) throughput in llama-bench's markdown table or JSON.
// Works on a model file or on synthetic random weights of a published shape (--synthetic). On a
// backend with device-resident decode (CUDA) it also reports time to first token, decode through
// recorded graphs vs eager steps, and device memory (weights, KV cache, workspace vs measured).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "cli_common.h"
#include "model/model_presets.h"
#include "sampling/sampler.h"

namespace ge::cli {

namespace {

struct BenchRow {
  std::string test;
  std::string path;  // "graph" (device sampling, replayed decode steps) or "eager"
  double mean = 0, stddev = 0;
  std::vector<double> samples;
  double ttft_ms = 0;        // pp tests: prefill + first sampled token, mean
  uint64_t kv_bytes = 0;     // the test's KV cache
  uint64_t used_bytes = 0;   // device memory in use after the test (free-memory delta since before the model)
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}


std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Args a("gemma bench", "gemma bench (-m MODEL | --synthetic NAME --quant Q) [-p 512] [-n 128] [-d 0] [-r 5]");
  a.option("model", "m", "PATH", "model file or directory");
  a.option("synthetic", "", "NAME", "random weights of a published shape: gemma-4-31b, gemma-3-270m, gemma-3-1b");
  a.option("quant", "", "Q", "synthetic encoding: q4_0, q8_0, int4-g32, int4-g64, int4-g128, int8", "q4_0");
  a.option("backend", "", "NAME", "cpu or cuda", "cpu");
  a.option("threads", "t", "N", "CPU threads (0 = all cores)", "0");
  a.option("n-prompt", "p", "LIST", "prefill lengths (comma-separated; 0 = none)", "512");
  a.option("n-gen", "n", "LIST", "decode lengths (comma-separated; 0 = none)", "128");
  a.option("depth", "d", "LIST", "tokens already in the KV cache before each test", "0");
  a.option("repetitions", "r", "N", "repetitions per test", "5");
  a.option("chunk", "", "N", "prefill chunk (tokens per forward pass; 0 = 512 on the CPU, the model's default "
           "on a GPU: 2048, fewer when device memory is short)", "0");
  a.option("output", "o", "FMT", "md or json", "md");
  a.flag("no-repack", "cpu: use Q4_0/Q8_0 weights in place from the file mapping (no packed copy)");
  a.option("decode", "", "LIST", "decode paths to time: graph (device sampling, one recorded graph per step; "
           "needs a backend that supports it) and/or eager (logits to the host)", "graph");
  a.option("depth-fill", "", "MODE", "compute (prefill the depth tokens) or skip (mark them cached without "
           "computing: decode timing at depth without the prefill cost)", "compute");
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  auto pp = a.integer_list("n-prompt", 0, 1 << 20);
  auto tg = a.integer_list("n-gen", 0, 1 << 20);
  auto depth = a.integer_list("depth", 0, 1 << 22);
  auto reps = a.integer("repetitions", 1, 1000);
  auto threads = a.integer("threads", 0, 1024);
  auto chunk = a.integer("chunk", 0, 65536);
  for (const Status* s : {&pp.status(), &tg.status(), &depth.status(), &reps.status(), &threads.status(), &chunk.status()})
    if (!s->is_ok()) return fail(*s);
  const std::string fmt = a.str("output");
  if (fmt != "md" && fmt != "json") return fail(invalid_argument("--output must be md or json"));
  if (a.has("model") == a.has("synthetic")) return fail(invalid_argument("gemma bench: give exactly one of -m or --synthetic"));
  const std::string depth_fill = a.str("depth-fill");
  if (depth_fill != "compute" && depth_fill != "skip") return fail(invalid_argument("--depth-fill must be compute or skip"));
  std::vector<bool> paths;  // true = graph
  {
    std::stringstream ss(a.str("decode"));
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item == "graph") paths.push_back(true);
      else if (item == "eager") paths.push_back(false);
      else return fail(invalid_argument("--decode takes graph and/or eager, got '" + item + "'"));
    }
    if (paths.empty()) return fail(invalid_argument("--decode needs graph and/or eager"));
  }

  std::unique_ptr<Backend> backend;
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<GemmaModel> model;
  std::string model_name, type_name;
  uint64_t model_bytes = 0;
  const int n_threads = *threads > 0 ? static_cast<int>(*threads) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  {
    auto b = create_backend(a.str("backend"), n_threads);
    if (!b.is_ok()) return fail(b.status());
    backend = std::move(b).value();
  }
  // The CPU keeps its measured 512; device backends let the model size the chunk from free memory.
  const int32_t max_chunk = *chunk > 0 ? static_cast<int32_t>(*chunk) : backend->memory_info().is_ok() ? 0 : 512;
  auto free_bytes = [&]() -> uint64_t {
    Result<BackendMemoryInfo> m = backend->memory_info();
    return m.is_ok() ? m->free_bytes : 0;
  };
  const uint64_t free_before_model = free_bytes();
  if (a.has("synthetic")) {
    auto cfg = preset_config(a.str("synthetic"));
    if (!cfg.is_ok()) return fail(cfg.status());
    auto q = synthetic_quant_arg(a.str("quant"));
    if (!q.is_ok()) return fail(q.status());
    auto m = GemmaModel::create_synthetic(*cfg, q->first, q->second, *backend, max_chunk, 1234);
    if (!m.is_ok()) return fail(m.status());
    model = std::move(m).value();
    model_name = a.str("synthetic") + " (synthetic)";
    type_name = a.str("quant");
  } else {
    auto cp = Checkpoint::open(a.str("model"));
    if (!cp.is_ok()) return fail(cp.status());
    checkpoint = std::move(cp).value();
    const std::string placement = cpu::apply_weight_policy(*backend, checkpoint->weight_bytes(), a.on("no-repack"));
    if (!placement.empty()) std::fprintf(stderr, "%s\n", placement.c_str());
    auto m = GemmaModel::create(checkpoint->config(), checkpoint->weights(), *backend, max_chunk);
    if (!m.is_ok()) return fail(m.status());
    model = std::move(m).value();
    model_name = a.str("model").substr(a.str("model").find_last_of('/') + 1);
    model_bytes = checkpoint->weight_bytes();
  }
  if (model_bytes == 0) model_bytes = model->packed_weight_bytes();
  const bool device_decode = model->supports_device_decode();
  for (bool g : paths)
    if (g && !device_decode && paths.size() > 1)
      return fail(unsupported("--decode graph: backend '" + backend->name() + "' has no device-resident decode"));
  // A backend without device decode runs the eager path under the default --decode graph.
  if (!device_decode) paths.assign(1, false);
  const GemmaConfig& c = model->config();
  const int64_t V = c.vocab_size;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> tok_dist(3, static_cast<int32_t>(std::min<int64_t>(V, 200000)) - 1);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = tok_dist(rng);
    return t;
  };
  std::vector<float> logits(static_cast<size_t>(V));

  std::vector<BenchRow> rows;
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  auto run_test = [&](const std::string& name, int64_t d, int64_t n_prompt, int64_t n_gen, bool graph) -> Status {
    BenchRow row;
    row.test = name + (d > 0 ? " @ d" + std::to_string(d) : "");
    row.path = graph ? "graph" : "eager";
    const int32_t ctx = static_cast<int32_t>(d + n_prompt + n_gen + 1);
    double ttft_sum = 0;
    for (int64_t r = -1; r < *reps; ++r) {  // r = -1 is the warm-up
      GE_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, model->create_kv_cache(ctx));
      row.kv_bytes = cache->bytes();
      Session s(*model, std::move(cache), ctx);
      if (d > 0) {
        const std::vector<int32_t> fill = random_tokens(d);
        if (depth_fill == "skip") {
          s.append(fill);
        } else {
          GE_RETURN_IF_ERROR(s.prefill(fill, nullptr));
        }
      }
      if (graph) GE_RETURN_IF_ERROR(s.set_device_sampling(greedy, 1));
      const auto t0 = std::chrono::steady_clock::now();
      double secs = 0;
      // The first token: prefill of the prompt (one token for tg tests), then one sampled token.
      int32_t tok = 0;
      const std::vector<int32_t> prompt = random_tokens(n_prompt > 0 ? n_prompt : 1);
      if (graph) {
        GE_ASSIGN_OR_RETURN(tok, s.prefill_sample(prompt));
      } else {
        GE_RETURN_IF_ERROR(s.prefill(prompt, logits.data()));
        tok = argmax(logits);
      }
      const double first = seconds_since(t0);
      if (n_prompt > 0) {
        secs = first;
        if (r >= 0) ttft_sum += first * 1000.0;
      } else {
        const auto t1 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < n_gen; ++i) {
          if (graph) {
            GE_ASSIGN_OR_RETURN(tok, s.decode_sample(tok));
          } else {
            GE_RETURN_IF_ERROR(s.decode(tok, logits.data()));
            tok = argmax(logits);
          }
        }
        secs = seconds_since(t1);
        if (graph && !s.graph_status().is_ok())
          std::fprintf(stderr, "note: decode steps ran eagerly: %s\n", s.graph_status().to_string().c_str());
      }
      if (r >= 0) row.samples.push_back(static_cast<double>(n_prompt > 0 ? n_prompt : n_gen) / secs);
      const uint64_t now_free = free_bytes();
      if (free_before_model > 0 && now_free > 0 && now_free < free_before_model)
        row.used_bytes = std::max<uint64_t>(row.used_bytes, free_before_model - now_free);
    }
    double sum = 0, sq = 0;
    for (double v : row.samples) sum += v;
    row.mean = sum / static_cast<double>(row.samples.size());
    for (double v : row.samples) sq += (v - row.mean) * (v - row.mean);
    row.stddev = row.samples.size() > 1 ? std::sqrt(sq / static_cast<double>(row.samples.size() - 1)) : 0.0;
    row.ttft_ms = n_prompt > 0 ? ttft_sum / static_cast<double>(row.samples.size()) : 0.0;
    rows.push_back(row);
    return Status::ok();
  };
  for (int64_t d : *depth) {
    for (bool g : paths) {
      for (int64_t p : *pp)
        if (p > 0)
          if (Status s = run_test("pp" + std::to_string(p), d, p, 0, g); !s.is_ok()) return fail(s);
      for (int64_t n : *tg)
        if (n > 0)
          if (Status s = run_test("tg" + std::to_string(n), d, 0, n, g); !s.is_ok()) return fail(s);
    }
  }

  double params = static_cast<double>(c.vocab_size * c.hidden_size);
  for (const auto& l : c.layers) {
    const double q = static_cast<double>(c.num_attention_heads) * l.head_dim, kv = static_cast<double>(l.num_key_value_heads) * l.head_dim;
    params += static_cast<double>(c.hidden_size) * (2 * q + kv * (l.k_eq_v ? 1 : 2)) + 3.0 * static_cast<double>(c.hidden_size * c.intermediate_size);
  }
  if (fmt == "json") {
    std::cout << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      std::cout << "  {\"model\": \"" << model_name << "\", \"model_size\": " << model_bytes
                << ", \"model_n_params\": " << static_cast<long long>(params) << ", \"backend\": \"" << backend->name()
                << "\", \"n_threads\": " << n_threads << ", \"test\": \"" << rows[i].test
                << "\", \"decode_path\": \"" << rows[i].path << "\", \"avg_ts\": " << rows[i].mean
                << ", \"stddev_ts\": " << rows[i].stddev << ", \"ttft_ms\": " << rows[i].ttft_ms
                << ", \"weights_bytes\": " << model->packed_weight_bytes() << ", \"kv_bytes\": " << rows[i].kv_bytes
                << ", \"workspace_bytes\": " << model->workspace_bytes() << ", \"device_used_bytes\": " << rows[i].used_bytes
                << ", \"max_chunk\": " << model->max_chunk()
                << ", \"samples_ts\": [";
      for (size_t j = 0; j < rows[i].samples.size(); ++j) std::cout << (j ? ", " : "") << rows[i].samples[j];
      std::cout << "]}" << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    std::cout << "]\n";
  } else {
    std::printf("| model | size | params | backend | threads | test | decode | t/s | TTFT ms |\n");
    std::printf("| ----- | ---: | -----: | ------- | ------: | ---: | ------ | --: | ------: |\n");
    for (const auto& r : rows)
      std::printf("| %s%s%s | %.2f MiB | %.2f M | %s | %d | %s | %s | %.2f ± %.2f | %s |\n", model_name.c_str(),
                  type_name.empty() ? "" : " ", type_name.c_str(), static_cast<double>(model_bytes) / 1048576.0,
                  params / 1e6, backend->name().c_str(), n_threads, r.test.c_str(), r.path.c_str(), r.mean, r.stddev,
                  r.ttft_ms > 0 ? fixed1(r.ttft_ms).c_str() : "-");
    std::printf("\nprefill chunk: %d tokens per forward pass; logits buffer: %d rows\n", model->max_chunk(),
                model->logits_rows());
    if (free_before_model > 0) {
      // Device memory: what the model accounts for vs what the device reports in use.
      const double mib = 1048576.0;
      std::printf("\n| test | weights MiB | KV MiB | workspace MiB | sum MiB | device used MiB | other MiB |\n");
      std::printf("| ---: | ----------: | -----: | ------------: | ------: | --------------: | --------: |\n");
      for (const auto& r : rows) {
        const uint64_t sum = model->packed_weight_bytes() + r.kv_bytes + model->workspace_bytes();
        std::printf("| %s %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", r.test.c_str(), r.path.c_str(),
                    static_cast<double>(model->packed_weight_bytes()) / mib, static_cast<double>(r.kv_bytes) / mib,
                    static_cast<double>(model->workspace_bytes()) / mib, static_cast<double>(sum) / mib,
                    static_cast<double>(r.used_bytes) / mib,
                    (static_cast<double>(r.used_bytes) - static_cast<double>(sum)) / mib);
      }
    }
  }
  return 0;
}

}  // namespace ge::cli
