// HttpServer: cpp-httplib set-up (threads, timeouts, body limit), the guard rails that run before
// routing (Host check, API key, CORS), and the small endpoints; generation endpoints are in
// generation_routes.cc.
#include "server/http_server.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "server/server_impl.h"

namespace ge::server {

namespace {

bool is_loopback_host(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

// The host part of a Host header ("[::1]:8080" -> "::1", "localhost:80" -> "localhost").
std::string host_of(const std::string& header) {
  if (!header.empty() && header[0] == '[') {
    const size_t close = header.find(']');
    return close == std::string::npos ? header : header.substr(1, close - 1);
  }
  const size_t colon = header.find(':');
  return colon == std::string::npos ? header : header.substr(0, colon);
}

// Constant-time comparison (the time taken does not depend on where the strings differ).
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

std::string reason_phrase(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 401:
      return "invalid or missing API key";
    case 403:
      return "forbidden";
    case 404:
      return "no such route";
    case 405:
      return "method not allowed";
    case 413:
      return "the request body is larger than the server accepts";
    case 429:
      return "too many requests";
    default:
      return status >= 500 ? "server error" : "request failed";
  }
}

}  // namespace

double ServerImpl::uptime_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

void ServerImpl::send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(dump_json(e.body()), "application/json");
}

void ServerImpl::send_unavailable(httplib::Response& res) {
  ApiError e;
  e.http_status = 503;
  e.type = "unavailable_error";
  e.code = "loading";
  e.message = state_ == State::kFailed ? "the model failed to load" : "Loading model";
  send_error(res, e);
}

ServerImpl::ServerImpl(ServerOptions options) : options_(std::move(options)) {
  svr_ = std::make_unique<httplib::Server>();
  started_ = std::chrono::steady_clock::now();
}

ServerImpl::~ServerImpl() = default;

namespace {

// cpp-httplib listens with a backlog of 5: a burst of connections (64 clients starting at once)
// overflows the accept queue and some are reset. Its socket is private, so it is found among this
// process's listening sockets by port, and listen() is called again with the system maximum (Linux
// takes a second listen() as a new backlog). Nothing changes when it is not found.
void widen_listen_backlog(int port) {
  for (int fd = 0; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

Status ServerImpl::bind() {
  const ServerOptions& o = options_;
  if (!is_loopback_host(o.host) && o.api_key.empty() && !o.insecure)
    return invalid_argument("serve: listening on " + o.host +
                            " exposes the model to the network; give --api-key (or --insecure to do it anyway)");
  if (o.max_body_bytes < 1024) return invalid_argument("serve: the body limit must be at least 1 KiB");
  const int threads = o.http_threads > 0 ? o.http_threads : o.scheduler.n_slots + o.scheduler.max_queue + 8;
  svr_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr_->set_read_timeout(o.read_timeout_s, 0);
  svr_->set_write_timeout(o.write_timeout_s, 0);
  svr_->set_keep_alive_timeout(o.keep_alive_timeout_s);
  svr_->set_payload_max_length(o.max_body_bytes);
  svr_->set_tcp_nodelay(true);
  install_guards();
  install_routes();
  if (o.port == 0) {
    const int p = svr_->bind_to_any_port(o.host);
    if (p < 0) return io_error("serve: cannot bind " + o.host);
    port_ = p;
  } else {
    if (!svr_->bind_to_port(o.host, o.port))
      return io_error("serve: cannot bind " + o.host + ":" + std::to_string(o.port) +
                      " (in use, or not an address here)");
    port_ = o.port;
  }
  widen_listen_backlog(port_);
  return Status::ok();
}

void ServerImpl::install_guards() {
  const ServerOptions& o = options_;
  const bool loopback = is_loopback_host(o.host);
  svr_->set_pre_routing_handler([this, loopback](const httplib::Request& req, httplib::Response& res) {
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 still sends Host: evil.example.
    if (loopback && options_.host_check && req.has_header("Host") &&
        !is_loopback_host(host_of(req.get_header_value("Host")))) {
      ApiError e = invalid_request("Host '" + req.get_header_value("Host").substr(0, 128) +
                                   "' is not allowed on a loopback server");
      e.http_status = 403;
      res.set_header("Connection", "close");
      send_error(res, e);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method == "OPTIONS") {
      // CORS preflight: answered only for the configured origin, without authentication (browsers
      // send none); everything else is refused.
      const std::string origin = req.get_header_value("Origin");
      if (!options_.cors_origin.empty() && (options_.cors_origin == "*" || origin == options_.cors_origin)) {
        res.status = 204;
        res.set_header("Access-Control-Allow-Origin", options_.cors_origin == "*" ? "*" : origin);
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
        res.set_header("Access-Control-Max-Age", "600");
        res.set_header("Vary", "Origin");
      } else {
        res.status = 405;
        send_error(res, ApiError{405, "method not allowed", "invalid_request_error", "", "", nlohmann::json::object()});
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!options_.api_key.empty() && req.path != "/health") {
      std::string key;
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0)
        key = auth.substr(7);
      else if (req.has_header("X-Api-Key"))
        key = req.get_header_value("X-Api-Key");
      if (!same_secret(key, options_.api_key)) {
        ApiError e =
            invalid_request("invalid or missing API key (send 'Authorization: Bearer <key>')", "", "invalid_api_key");
        e.http_status = 401;
        res.set_header("WWW-Authenticate", "Bearer");
        res.set_header("Connection", "close");  // the unread body must not be taken for the next request
        send_error(res, e);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.cors_origin.empty()) return;
    const std::string origin = req.get_header_value("Origin");
    if (options_.cors_origin == "*" || (!origin.empty() && origin == options_.cors_origin)) {
      res.set_header("Access-Control-Allow-Origin", options_.cors_origin == "*" ? "*" : origin);
      res.set_header("Vary", "Origin");
    }
  });
  // Errors raised by httplib itself (404, 413, ...) get an OpenAI-shaped body too.
  svr_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e = invalid_request(reason_phrase(res.status));
    e.http_status = res.status;
    if (res.status >= 500) e.type = "server_error";
    if (res.status == 404) e.type = "not_found_error";
    res.set_content(dump_json(e.body()), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    ApiError e;
    e.http_status = 500;
    e.type = "server_error";
    e.message = "internal error: " + what.substr(0, 256);
    res.status = 500;
    res.set_content(dump_json(e.body()), "application/json");
  });
  svr_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.count(req.path, res.status);
    if (options_.log_requests)
      std::fprintf(stderr, "%s %s %s -> %d\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(),
                   res.status);
  });
}

void ServerImpl::install_routes() {
  svr_->Get("/health", [this](const httplib::Request&, httplib::Response& res) { handle_health(res); });
  svr_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (state_ != State::kReady) {
      res.set_content(metrics_.render(nullptr, 0, uptime_s()), "text/plain; version=0.0.4");
      return;
    }
    const SchedulerStats st = scheduler_->stats();
    res.set_content(metrics_.render(&st, scheduler_->heartbeat_age_ms() / 1000.0, uptime_s()),
                    "text/plain; version=0.0.4");
  });
  for (const char* path : {"/v1/models", "/models"})
    svr_->Get(path, [this](const httplib::Request&, httplib::Response& res) { handle_models(res); });
  // POST bodies are read here rather than by httplib, which would parse a body sent as
  // application/x-www-form-urlencoded (curl's default) as form fields and cap it at 8 KiB.
  auto post = [this](const char* path,
                     std::function<void(const httplib::Request&, const std::string&, httplib::Response&)> h) {
    svr_->Post(path,
               [this, h](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                 std::string body;
                 bool too_big = false;
                 const bool read = reader([&](const char* data, size_t n) {
                   if (body.size() + n > options_.max_body_bytes) {
                     too_big = true;
                     return false;
                   }
                   body.append(data, n);
                   return true;
                 });
                 if (!read) {
                   // httplib refuses a declared Content-Length over the limit itself (status 413); a chunked
                   // body is cut off above; anything else is a broken upload.
                   too_big = too_big || res.status == 413;
                   ApiError e = invalid_request(too_big ? "the request body is larger than " +
                                                              std::to_string(options_.max_body_bytes) + " bytes"
                                                        : "the request body could not be read");
                   e.http_status = too_big ? 413 : 400;
                   res.set_header("Connection", "close");
                   return send_error(res, e);
                 }
                 h(req, body, res);
               });
  };
  for (const char* path : {"/v1/chat/completions", "/chat/completions"})
    post(path, [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
      handle_generation(req, body, res, true);
    });
  for (const char* path : {"/v1/completions", "/completions"})
    post(path, [this](const httplib::Request& req, const std::string& body, httplib::Response& res) {
      handle_generation(req, body, res, false);
    });
  post("/tokenize", [this](const httplib::Request&, const std::string& body, httplib::Response& res) {
    handle_tokenize(body, res);
  });
  post("/detokenize", [this](const httplib::Request&, const std::string& body, httplib::Response& res) {
    handle_detokenize(body, res);
  });
}

void ServerImpl::handle_health(httplib::Response& res) {
  using nlohmann::json;
  if (state_ != State::kReady) return send_unavailable(res);
  const Scheduler::Health h = scheduler_->health();
  if (h == Scheduler::Health::kOk) {
    const SchedulerStats st = scheduler_->stats();
    res.set_content(dump_json(json{{"status", "ok"},
                                   {"slots_idle", st.n_slots - st.active_slots},
                                   {"slots_processing", st.active_slots},
                                   {"queue_depth", st.queue_depth}}),
                    "application/json");
    return;
  }
  ApiError e;
  e.type = "server_error";
  e.http_status = h == Scheduler::Health::kStalled ? 503 : 500;
  e.code = h == Scheduler::Health::kStalled ? "engine_stalled" : "engine_stopped";
  e.message = h == Scheduler::Health::kStalled
                  ? "the engine loop has not advanced for " +
                        std::to_string(static_cast<int64_t>(scheduler_->heartbeat_age_ms())) + " ms"
                  : "the engine loop is not running";
  json body = e.body();
  body["status"] = h == Scheduler::Health::kStalled ? "stalled" : "stopped";
  res.status = e.http_status;
  res.set_content(dump_json(body), "application/json");
}

void ServerImpl::handle_models(httplib::Response& res) {
  using nlohmann::json;
  if (state_ != State::kReady) return send_unavailable(res);
  const GemmaConfig& c = engine_->config();
  json m = {{"id", options_.model_name},
            {"object", "model"},
            {"created", loaded_at_},
            {"owned_by", "gemma-engine"},
            {"meta",
             {{"family", c.family == ModelFamily::kGemma4 ? "gemma4" : "gemma3"},
              {"n_ctx", options_.scheduler.context_len},
              {"n_ctx_train", c.max_position_embeddings},
              {"n_vocab", c.vocab_size},
              {"n_embd", c.hidden_size},
              {"n_layer", c.num_hidden_layers},
              {"slots", options_.scheduler.n_slots}}}};
  res.set_content(dump_json(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
}

void ServerImpl::handle_tokenize(const std::string& body_text, httplib::Response& res) {
  using nlohmann::json;
  if (state_ != State::kReady) return send_unavailable(res);
  json body;
  if (auto e = parse_body(body_text, limits_, &body)) return send_error(res, *e);
  TokenizeRequest tr;
  if (auto e = parse_tokenize_request(body, &tr)) return send_error(res, *e);
  const Tokenizer& tok = engine_->tokenizer();
  std::vector<int32_t> ids = tok.encode(tr.content, false, tr.parse_special);
  if (tr.add_special && tok.bos_id() >= 0 && (ids.empty() || ids[0] != tok.bos_id()))
    ids.insert(ids.begin(), tok.bos_id());
  json out = json::array();
  for (int32_t id : ids) {
    if (!tr.with_pieces) {
      out.push_back(id);
      continue;
    }
    std::string raw;
    tok.append_piece(id, false, false, &raw);
    // A piece that is not UTF-8 on its own (a byte token) is given as its bytes.
    json piece;
    if (utf8::is_valid(raw)) {
      piece = raw;
    } else {
      piece = json::array();
      for (unsigned char ch : raw) piece.push_back(ch);
    }
    out.push_back(json{{"id", id}, {"piece", piece}});
  }
  res.set_content(
      dump_json(json{{"tokens", out}, {"count", ids.size()}, {"max_model_len", options_.scheduler.context_len}}),
      "application/json");
}

void ServerImpl::handle_detokenize(const std::string& body_text, httplib::Response& res) {
  using nlohmann::json;
  if (state_ != State::kReady) return send_unavailable(res);
  json body;
  if (auto e = parse_body(body_text, limits_, &body)) return send_error(res, *e);
  DetokenizeRequest dr;
  if (auto e = parse_detokenize_request(body, limits_, &dr)) return send_error(res, *e);
  // Special tokens are written out, so tokenize (parse_special) and detokenize round-trip.
  res.set_content(dump_json(json{{"content", engine_->tokenizer().decode(dr.tokens, /*skip_special=*/false)}}),
                  "application/json");
}

Status ServerImpl::serve(std::function<Result<std::unique_ptr<Engine>>()> load) {
  // Stops the listener once asked, even when asked before listen_after_bind() got going.
  std::thread stopper([this] {
    std::unique_lock<std::mutex> lk(stop_mu_);
    stop_cv_.wait(lk, [this] { return stop_requested_ || serve_done_; });
    while (!serve_done_ && !svr_->is_running()) {
      lk.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      lk.lock();
    }
    if (serve_done_) return;
    lk.unlock();
    // Running requests end first (cancelled), so that the HTTP workers can be joined.
    if (state_ == State::kReady) scheduler_->stop();
    svr_->stop();
  });
  std::thread loader([this, load = std::move(load)] {
    Result<std::unique_ptr<Engine>> e = load();
    if (!e.is_ok()) {
      fail_load(e.status());
      return;
    }
    std::unique_ptr<Engine> engine = std::move(e).value();
    // --ctx 0 (the default): min(4096, the model's maximum). Written before state_ turns ready, so
    // no request thread reads it earlier.
    if (options_.scheduler.context_len <= 0) {
      const int64_t max_pos = engine->config().max_position_embeddings;
      options_.scheduler.context_len = static_cast<int32_t>(max_pos > 0 ? std::min<int64_t>(4096, max_pos) : 4096);
    }
    Result<std::unique_ptr<Scheduler>> s = Scheduler::create(*engine, options_.scheduler);
    if (!s.is_ok()) {
      fail_load(s.status());
      return;
    }
    engine_ = std::move(engine);
    scheduler_ = std::move(s).value();
    format_ = engine_->config().family == ModelFamily::kGemma4 ? chat::ChatFormat::kGemma4 : chat::ChatFormat::kGemma3;
    limits_.n_vocab = engine_->config().vocab_size;
    limits_.max_n = options_.scheduler.n_slots;
    token_bytes_ = token_byte_table(engine_->tokenizer());
    loaded_at_ = static_cast<int64_t>(std::time(nullptr));
    state_ = State::kReady;
    std::fprintf(stderr, "gemma serve: ready on http://%s:%d (%d slots x %d tokens, queue %d)\n", options_.host.c_str(),
                 port_, options_.scheduler.n_slots, options_.scheduler.context_len, options_.scheduler.max_queue);
  });
  std::fprintf(stderr, "gemma serve: listening on http://%s:%d, loading the model\n", options_.host.c_str(), port_);
  svr_->listen_after_bind();
  {
    std::lock_guard<std::mutex> lk(stop_mu_);
    serve_done_ = true;
  }
  stop_cv_.notify_all();
  stopper.join();
  loader.join();
  if (scheduler_) scheduler_->stop();
  std::lock_guard<std::mutex> lk(load_mu_);
  return load_error_;
}

void ServerImpl::fail_load(const Status& s) {
  {
    std::lock_guard<std::mutex> lk(load_mu_);
    load_error_ = s;
  }
  state_ = State::kFailed;
  request_stop();
}

void ServerImpl::request_stop() {
  {
    std::lock_guard<std::mutex> lk(stop_mu_);
    stop_requested_ = true;
  }
  stop_cv_.notify_all();
}

void ServerImpl::stop() { request_stop(); }

HttpServer::HttpServer(ServerOptions options) : impl_(std::make_unique<ServerImpl>(std::move(options))) {}
HttpServer::~HttpServer() = default;
Status HttpServer::bind() { return impl_->bind(); }
int HttpServer::port() const { return impl_->port(); }
Status HttpServer::serve(std::function<Result<std::unique_ptr<Engine>>()> load) {
  return impl_->serve(std::move(load));
}
void HttpServer::stop() { impl_->stop(); }

}  // namespace ge::server
