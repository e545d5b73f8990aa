// A tiny HTTP/1.1 and UDP echo test server and its clients, for the lab, the demo and the tests.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace sockmesh::lab {

// Serves forever, dual-stack (one AF_INET6 socket with IPV6_V6ONLY=0 per protocol; plain AF_INET where the netns
// has no IPv6):
// - TCP [::]:port: reads each request up to "\r\n\r\n" (or 4 KiB, or EOF) and replies "200 OK" with body
//   "<name>\n" and the header `X-Sockmesh-Peer: <client as the server sees it>`, then closes.
// - UDP [::]:port: answers each datagram with one datagram "<name>\n<client>\n", sent from the address the
//   datagram was sent to.
// <client> is "ip:port" for IPv4 (v4-mapped addresses are unmapped) and "[ip6]:port" for IPv6.
// Single-threaded, many connections at once (poll). Returns non-zero only when it cannot listen.
int run_echo_server(uint16_t port, const std::string& name);

struct HttpResult {
  int err = 0;          // errno of the failed step, 0 on success
  std::string peer;     // getpeername() of the client socket, "ip:port" or "[ip6]:port"
  std::string headers;  // status line and headers, without the final "\r\n\r\n"
  std::string body;
  // Value of a response header (case-insensitive name), "" when absent.
  std::string header(const std::string& name) const;
};

// GET / from ip:port with 5 s timeouts; the whole response. ip: an IPv4 or IPv6 literal (one with ':' is
// IPv6; "[...]" brackets are accepted).
HttpResult http_fetch(const std::string& ip, uint16_t port);

// GET / from ip:port; returns the body ("" on failure). peer_name: getpeername() of the client socket
// ("ip:port" or "[ip6]:port"), err: errno on failure (0 on success).
std::string http_get(const std::string& ip, uint16_t port, std::string* peer_name = nullptr, int* err = nullptr);

struct UdpResult {
  int err = 0;        // errno of the failed step (ETIMEDOUT when no reply came in time), 0 on success
  std::string reply;  // the reply datagram
  std::string from;   // source of the reply as recvfrom() reports it: "ip:port" or "[ip6]:port"
  // The first line of the reply (the echo server's name), without "\n".
  std::string body() const;
};

// Unconnected socket: sendto(ip:port) a small datagram, wait up to timeout_ms for one reply with recvfrom.
UdpResult udp_request(const std::string& ip, uint16_t port, int timeout_ms = 1000);
// Connected socket: connect(ip:port), send, recv; `from` from getpeername().
UdpResult udp_request_connected(const std::string& ip, uint16_t port, int timeout_ms = 1000);

// "ip:port" / "[ip6]:port" of a socket address (AF_INET or AF_INET6; v4-mapped IPv6 is shown as IPv4).
std::string endpoint_string(const sockaddr* addr, socklen_t len);

}  // namespace sockmesh::lab
