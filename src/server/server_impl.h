// Internal to src/server: the state behind HttpServer, shared by http_server.cc (set-up, guards,
// small endpoints) and generation_routes.cc (chat and text completions).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "chat/chat_template.h"
#include "server/http_server.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/server_metrics.h"
#include "tokenizer/utf8.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace ge::server {

class ServerImpl {
 public:
  explicit ServerImpl(ServerOptions options);
  ~ServerImpl();

  Status bind();
  int port() const { return port_; }
  Status serve(std::function<Result<std::unique_ptr<Engine>>()> load);
  void stop();

 private:
  enum class State { kLoading, kReady, kFailed };

  void install_guards();
  void install_routes();
  void handle_health(httplib::Response& res);
  void handle_models(httplib::Response& res);
  void handle_tokenize(const std::string& body, httplib::Response& res);
  void handle_detokenize(const std::string& body, httplib::Response& res);
  // /v1/chat/completions (chat) and /v1/completions (!chat), streamed or not.
  void handle_generation(const httplib::Request& req, const std::string& body, httplib::Response& res, bool chat);
  void fail_load(const Status& s);
  void request_stop();
  double uptime_s() const;
  static void send_error(httplib::Response& res, const ApiError& e);
  void send_unavailable(httplib::Response& res);

  ServerOptions options_;
  std::unique_ptr<httplib::Server> svr_;
  int port_ = 0;
  std::chrono::steady_clock::time_point started_;
  ServerMetrics metrics_;

  // Written by the loader thread before state_ becomes kReady, read-only afterwards.
  std::atomic<State> state_{State::kLoading};
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
  chat::ChatFormat format_ = chat::ChatFormat::kGemma4;
  RequestLimits limits_;
  std::shared_ptr<const std::vector<std::string>> token_bytes_;  // per token id (response_format)
  int64_t loaded_at_ = 0;

  std::mutex load_mu_;
  Status load_error_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_requested_ = false;
  bool serve_done_ = false;
};

}  // namespace ge::server
