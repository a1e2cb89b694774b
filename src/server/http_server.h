// `gemma serve`: the OpenAI-compatible HTTP adapter (cpp-httplib) over the continuous-batching
// Scheduler. Routes, authentication, CORS, limits and SSE live here; generation lives in runtime/.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"

namespace ge::server {

class ServerImpl;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;          // 0: any free port (see HttpServer::port())
  std::string api_key;      // empty: no authentication
  std::string cors_origin;  // empty: no CORS headers at all
  bool insecure = false;    // allow a non-loopback address without an API key
  bool host_check = true;   // on a loopback address, refuse Host headers that are not loopback names
  size_t max_body_bytes = 8u << 20;
  int http_threads = 0;      // 0: slots + queue + 8
  int read_timeout_s = 30;   // request line, headers and body
  int write_timeout_s = 60;  // a client that stops reading for this long is dropped
  int keep_alive_timeout_s = 5;
  std::string model_name = "gemma";  // the id in /v1/models and in responses
  SchedulerOptions scheduler;
  bool log_requests = true;  // one line per request on stderr
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Checks the options and binds the address (a port in use fails here, before any loading).
  Status bind();
  int port() const;

  // Serves until stop(). The model is loaded by `load` on a background thread while /health
  // answers 503; a failed load stops the server and is returned.
  Status serve(std::function<Result<std::unique_ptr<Engine>>()> load);

  // Safe from any thread (and before serve()); in-flight requests are cancelled.
  void stop();

 private:
  std::unique_ptr<ServerImpl> impl_;
};

}  // namespace ge::server
