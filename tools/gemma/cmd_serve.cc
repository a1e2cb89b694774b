// `gemma serve`: the OpenAI-compatible server (continuous batching over --slots sequences).
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli_common.h"
#include "server/http_server.h"

namespace ge::cli {
namespace {
// The server the signal thread stops; cleared before the server goes away.
std::atomic<server::HttpServer*> g_server{nullptr};


// --synthetic: random weights of a preset's shape, the tokenizer of --tokenizer.
Result<std::unique_ptr<Engine>> load_synthetic(const Args& a) {
  GE_ASSIGN_OR_RETURN(auto q, synthetic_quant_arg(a.str("quant")));
  EngineOptions o;
  o.backend = a.str("backend");
  GE_ASSIGN_OR_RETURN(int64_t threads, a.integer("threads", 0, 1024));
  GE_ASSIGN_OR_RETURN(int64_t chunk, a.integer("chunk", 0, 65536));
  o.n_threads = static_cast<int>(threads);
  o.max_chunk = static_cast<int32_t>(chunk);
  return Engine::create_synthetic(a.str("synthetic"), q.first, q.second, a.str("tokenizer"), o);
}
}  // namespace

int cmd_serve(int argc, char** argv) {
  Args a("gemma serve",
         "gemma serve (-m MODEL | --synthetic NAME --tokenizer GGUF) [--host ADDR] [--port N] [--slots N] [options]");
  // 256-token prompt chunks keep a decoding stream's inter-token gap short while others prefill.
  add_model_options(a, "256");
  a.option("synthetic", "", "NAME", "random weights of a published shape instead of -m (load tests): gemma-4-31b, ...");
  a.option("quant", "", "Q", "--synthetic encoding: q4_0, q8_0, int4-g32, int4-g64, int4-g128, int8", "q4_0");
  a.option("tokenizer", "", "GGUF", "--synthetic: GGUF whose vocabulary (same size as the model's) is used");
  a.option("host", "", "ADDR", "address to listen on", "127.0.0.1");
  a.option("port", "", "N", "port (0 = any free port)", "8080");
  a.option("slots", "", "N", "sequences decoded together, each with its own KV cache of --ctx tokens", "4");
  a.option("queue", "", "N", "requests that may wait for a slot; more get 429", "64");
  a.option("api-key", "", "KEY", "require 'Authorization: Bearer KEY' on every route but /health");
  a.option("cors-origin", "", "ORIGIN", "allow browser requests from this origin ('*' for any)");
  a.option("max-body", "", "BYTES", "largest request body accepted (413 beyond)", "8388608");
  a.option("http-threads", "", "N", "HTTP worker threads (0 = slots + queue + 8)", "0");
  a.option("model-name", "", "NAME", "model id reported by /v1/models (default: the file name)");
  a.option("stall-ms", "", "MS", "/health fails when the engine loop has not advanced for this long", "5000");
  a.flag("insecure", "allow a non-loopback --host without --api-key");
  a.flag("no-host-check", "accept any Host header on a loopback address");
  a.flag("quiet", "no per-request log lines");
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  const bool synthetic = a.has("synthetic");
  if (synthetic == a.has("model")) return fail(invalid_argument("gemma serve: give exactly one of -m or --synthetic"));
  if (synthetic && !a.has("tokenizer"))
    return fail(invalid_argument("gemma serve: --synthetic needs --tokenizer FILE.gguf (its vocabulary is used)"));
  if (synthetic && a.has("quantize")) return fail(invalid_argument("gemma serve: --quantize does not apply to --synthetic"));

  server::ServerOptions o;
  o.host = a.str("host");
  o.api_key = a.str("api-key");
  o.cors_origin = a.str("cors-origin");
  o.insecure = a.on("insecure");
  o.host_check = !a.on("no-host-check");
  o.log_requests = !a.on("quiet");
  Result<int64_t> port = a.integer("port", 0, 65535);
  Result<int64_t> slots = a.integer("slots", 1, 4096);
  Result<int64_t> queue = a.integer("queue", 0, 1 << 20);
  Result<int64_t> body = a.integer("max-body", 1024, int64_t{1} << 32);
  Result<int64_t> threads = a.integer("http-threads", 0, 4096);
  Result<double> stall = a.number("stall-ms", 1, 1e9);
  Result<int32_t> ctx = context_length(a);
  for (const Status& s :
       {port.status(), slots.status(), queue.status(), body.status(), threads.status(), stall.status(), ctx.status()})
    if (!s.is_ok()) return fail(s);
  o.port = static_cast<int>(*port);
  o.max_body_bytes = static_cast<size_t>(*body);
  o.http_threads = static_cast<int>(*threads);
  o.scheduler.n_slots = static_cast<int32_t>(*slots);
  o.scheduler.max_queue = static_cast<int32_t>(*queue);
  o.scheduler.context_len = *ctx;
  o.scheduler.stall_ms = *stall;
  std::string name = a.str("model-name");
  if (name.empty() && synthetic) name = a.str("synthetic") + "-synthetic";
  if (name.empty()) {
    name = a.str("model");
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (const size_t slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  }
  o.model_name = name;

  // SIGINT / SIGTERM are taken by a waiting thread (a handler may not stop the server safely);
  // they are blocked before any other thread starts so that every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that vanished mid-write must not kill the server

  server::HttpServer srv(o);
  if (Status s = srv.bind(); !s.is_ok()) return fail(s);
  g_server = &srv;
  std::thread([set] {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      std::fprintf(stderr, "gemma serve: signal %d, shutting down\n", sig);
      if (server::HttpServer* p = g_server.load()) p->stop();
    }
  }).detach();
  Status s = srv.serve([&a, synthetic] { return synthetic ? load_synthetic(a) : load_engine(a, /*show_progress=*/false); });
  g_server = nullptr;
  if (!s.is_ok()) return fail(s);
  return 0;
}

}  // namespace ge::cli
