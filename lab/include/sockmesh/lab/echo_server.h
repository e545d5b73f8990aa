// A tiny HTTP/1.1 test server and client for the lab, the demo and the tests.
#pragma once

#include <cstdint>
#include <string>

namespace sockmesh::lab {

// Serves forever on 0.0.0.0:port: reads each request up to "\r\n\r\n" (or 4 KiB, or EOF) and replies
// "200 OK" with body "<name>\n" and the header `X-Sockmesh-Peer: <client ip:port as the server sees it>`, then
// closes. Single-threaded, many connections at once (poll). Returns non-zero only when it cannot listen.
int run_echo_server(uint16_t port, const std::string& name);

struct HttpResult {
  int err = 0;          // errno of the failed step, 0 on success
  std::string peer;     // getpeername() of the client socket, "ip:port"
  std::string headers;  // status line and headers, without the final "\r\n\r\n"
  std::string body;
  // Value of a response header (case-insensitive name), "" when absent.
  std::string header(const std::string& name) const;
};

// GET / from ip:port with 5 s timeouts; the whole response.
HttpResult http_fetch(const std::string& ip, uint16_t port);

// GET / from ip:port; returns the body ("" on failure). peer_name: getpeername() of the client socket
// ("ip:port"), err: errno on failure (0 on success).
std::string http_get(const std::string& ip, uint16_t port, std::string* peer_name = nullptr, int* err = nullptr);

}  // namespace sockmesh::lab
