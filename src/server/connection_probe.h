// Detects that an HTTP client went away while its request is still running. cpp-httplib 0.11
// hands handlers no socket, so the probe finds it by the request's address pair and peeks at it.
#pragma once

#include <string>

namespace ge::server {

class ConnectionProbe {
 public:
  ConnectionProbe() = default;
  // Finds this process's socket whose local and peer addresses are the given ones (numeric
  // host strings as cpp-httplib reports them). Without a match the probe never reports a close.
  ConnectionProbe(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);

  // True once the peer closed or reset the connection (a FIN, RST or error on the socket). Data the
  // client sent meanwhile (a pipelined request) does not count as a close.
  bool peer_closed() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace ge::server
