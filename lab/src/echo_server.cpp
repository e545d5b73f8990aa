#include "sockmesh/lab/echo_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include <fmt/format.h>

namespace sockmesh::lab {
namespace {

constexpr size_t kMaxRequest = 4096;

struct Connection {
  std::string peer;
  std::string in;
  std::string out;  // reply not yet sent; non-empty once the request is complete
  size_t sent = 0;
};

std::string reply(const std::string& name, const std::string& peer) {
  const std::string body = name + "\n";
  return fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\nX-Sockmesh-Peer: {}\r\n\r\n{}",
                     body.size(), peer, body);
}

// Returns false when the connection is finished (reply sent, or the peer is gone).
bool on_readable(int fd, Connection& c, const std::string& name) {
  char buf[2048];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n > 0) c.in.append(buf, static_cast<size_t>(n));
  if (n == 0 || c.in.find("\r\n\r\n") != std::string::npos || c.in.size() >= kMaxRequest) c.out = reply(name, c.peer);
  return true;
}

bool on_writable(int fd, Connection& c) {
  ssize_t n = ::send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  c.sent += static_cast<size_t>(n);
  return c.sent < c.out.size();
}

// A dual-stack socket bound to [::]:port (0.0.0.0:port where the netns has no IPv6); -1 with a message on stderr.
int listen_socket(int type, uint16_t port) {
  const char* proto = type == SOCK_STREAM ? "tcp" : "udp";
  int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const bool v6 = fd >= 0;
  if (!v6 && errno == EAFNOSUPPORT) fd = ::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    std::fprintf(stderr, "echo-server: %s socket: %s\n", proto, std::strerror(errno));
    return -1;
  }
  int one = 1, zero = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
      std::fprintf(stderr, "echo-server: IPV6_V6ONLY=0: %s\n", std::strerror(errno));
      ::close(fd);
      return -1;
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_any;
    len = sizeof *a;
    // The local address each datagram was sent to (v4-mapped for IPv4), to answer from it.
    if (type == SOCK_DGRAM) ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    len = sizeof *a;
    if (type == SOCK_DGRAM) ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || (type == SOCK_STREAM && ::listen(fd, 1024) != 0)) {
    std::fprintf(stderr, "echo-server: %s listen on %s:%u: %s\n", proto, v6 ? "[::]" : "0.0.0.0", port,
                 std::strerror(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

// Answers every queued datagram: "<name>\n<peer>\n" to its sender, from the address it was sent to.
void serve_udp(int fd, const std::string& name) {
  for (;;) {
    char buf[2048];
    sockaddr_storage peer{};
    alignas(cmsghdr) char control[256];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_name = &peer;
    msg.msg_namelen = sizeof peer;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(fd, &msg, MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: drained; anything else (an ICMP error queued for an earlier reply): try next poll
    }
    const socklen_t peer_len = msg.msg_namelen;
    // The reply's source: the destination of the request, as IPV6_PKTINFO / IP_PKTINFO; interface left to routing.
    alignas(cmsghdr) char out_control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
    size_t out_len = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      auto* oc = reinterpret_cast<cmsghdr*>(out_control);
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        info.ipi6_ifindex = 0;
        oc->cmsg_level = IPPROTO_IPV6;
        oc->cmsg_type = IPV6_PKTINFO;
        oc->cmsg_len = CMSG_LEN(sizeof info);
        std::memcpy(CMSG_DATA(oc), &info, sizeof info);
        out_len = CMSG_SPACE(sizeof info);
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        in_pktinfo out{};
        out.ipi_spec_dst = info.ipi_addr;
        oc->cmsg_level = IPPROTO_IP;
        oc->cmsg_type = IP_PKTINFO;
        oc->cmsg_len = CMSG_LEN(sizeof out);
        std::memcpy(CMSG_DATA(oc), &out, sizeof out);
        out_len = CMSG_SPACE(sizeof out);
      }
    }
    const std::string answer = fmt::format("{}\n{}\n", name, endpoint_string(reinterpret_cast<sockaddr*>(&peer), peer_len));
    iovec out_iov{const_cast<char*>(answer.data()), answer.size()};
    msghdr out{};
    out.msg_name = &peer;
    out.msg_namelen = peer_len;
    out.msg_iov = &out_iov;
    out.msg_iovlen = 1;
    out.msg_control = out_len ? out_control : nullptr;
    out.msg_controllen = out_len;
    if (::sendmsg(fd, &out, MSG_DONTWAIT) < 0 && out_len != 0) {
      // E.g. the address went away meanwhile: answer from whatever routing picks.
      out.msg_control = nullptr;
      out.msg_controllen = 0;
      ::sendmsg(fd, &out, MSG_DONTWAIT);
    }
  }
}

// An IPv4 or IPv6 literal ("[...]" accepted) and a port; false when ip is neither.
bool parse_endpoint(const std::string& ip, uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  std::string text = ip;
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  ss = {};
  if (text.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    len = sizeof *a;
    return ::inet_pton(AF_INET6, text.c_str(), &a->sin6_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  len = sizeof *a;
  return ::inet_pton(AF_INET, text.c_str(), &a->sin_addr) == 1;
}

// Waits for fd to be readable for at most timeout_ms; false (errno ETIMEDOUT) when it is not.
bool wait_readable(int fd, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (n > 0) return true;
    if (n == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR) return false;
  }
}

constexpr const char kUdpRequest[] = "sockmesh-lab udp echo request\n";

UdpResult udp_exchange(const std::string& ip, uint16_t port, int timeout_ms, bool connected) {
  UdpResult r;
  sockaddr_storage to{};
  socklen_t to_len = 0;
  if (!parse_endpoint(ip, port, to, to_len)) {
    r.err = EINVAL;
    return r;
  }
  int fd = ::socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.err = errno;
    return r;
  }
  auto fail = [&] {
    r.err = errno;
    ::close(fd);
    return r;
  };
  const sockaddr* dst = reinterpret_cast<sockaddr*>(&to);
  if (connected) {
    if (::connect(fd, dst, to_len) != 0) return fail();
    if (::send(fd, kUdpRequest, sizeof kUdpRequest - 1, 0) < 0) return fail();
  } else if (::sendto(fd, kUdpRequest, sizeof kUdpRequest - 1, 0, dst, to_len) < 0) {
    return fail();
  }
  if (!wait_readable(fd, timeout_ms)) return fail();
  char buf[2048];
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  ssize_t n = connected ? ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)
                        : ::recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
  if (n < 0) return fail();  // a connected socket reports an ICMP port unreachable here (ECONNREFUSED)
  if (connected) {
    from_len = sizeof from;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&from), &from_len) != 0) return fail();
  }
  r.reply.assign(buf, static_cast<size_t>(n));
  r.from = endpoint_string(reinterpret_cast<sockaddr*>(&from), from_len);
  ::close(fd);
  return r;
}

}  // namespace

std::string endpoint_string(const sockaddr* addr, socklen_t len) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(addr);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    return fmt::format("{}:{}", ip, ntohs(a->sin_port));
  }
  if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(addr);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      ::inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof ip);
      return fmt::format("{}:{}", ip, ntohs(a->sin6_port));
    }
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    return fmt::format("[{}]:{}", ip, ntohs(a->sin6_port));
  }
  return "?";
}

int run_echo_server(uint16_t port, const std::string& name) {
  const int lfd = listen_socket(SOCK_STREAM, port);
  if (lfd < 0) return 1;
  const int ufd = listen_socket(SOCK_DGRAM, port);
  if (ufd < 0) {
    ::close(lfd);
    return 1;
  }
  std::map<int, Connection> conns;
  std::vector<pollfd> fds;
  for (;;) {
    fds.assign({{lfd, POLLIN, 0}, {ufd, POLLIN, 0}});
    for (const auto& [fd, c] : conns) fds.push_back({fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "echo-server: poll: %s\n", std::strerror(errno));
      return 1;
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      Connection& c = conns[fd];
      bool keep = c.out.empty() ? on_readable(fd, c, name) : on_writable(fd, c);
      if (keep && (fds[i].revents & (POLLERR | POLLNVAL))) keep = false;
      if (!keep) {
        ::close(fd);
        conns.erase(fd);
      }
    }
    if (fds[1].revents) serve_udp(ufd, name);
    if (fds[0].revents & POLLIN) {
      for (;;) {
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        conns[fd].peer = endpoint_string(reinterpret_cast<sockaddr*>(&peer), len);
      }
    }
  }
}

std::string HttpResult::header(const std::string& name) const {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  const std::string want = lower(name) + ":";
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t end = headers.find("\r\n", pos);
    if (end == std::string::npos) end = headers.size();
    const std::string line = headers.substr(pos, end - pos);
    if (lower(line.substr(0, want.size())) == want) {
      size_t v = want.size();
      while (v < line.size() && line[v] == ' ') ++v;
      return line.substr(v);
    }
    pos = end + 2;
  }
  return "";
}

HttpResult http_fetch(const std::string& ip, uint16_t port) {
  HttpResult r;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!parse_endpoint(ip, port, addr, addr_len)) {
    r.err = EINVAL;
    return r;
  }
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.err = errno;
    return r;
  }
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);  // also bounds connect()
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  auto fail = [&] {
    r.err = errno;
    ::close(fd);
    return r;
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) return fail();
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    r.peer = endpoint_string(reinterpret_cast<sockaddr*>(&peer), len);
  }
  const std::string host = addr.ss_family == AF_INET6 && ip.front() != '[' ? "[" + ip + "]" : ip;
  const std::string request = fmt::format("GET / HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n", host, port);
  for (size_t done = 0; done < request.size();) {
    ssize_t n = ::send(fd, request.data() + done, request.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail();
    }
    done += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail();
    }
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t split = response.find("\r\n\r\n");
  if (split == std::string::npos) {
    r.err = EPROTO;
    return r;
  }
  r.headers = response.substr(0, split);
  r.body = response.substr(split + 4);
  return r;
}

std::string http_get(const std::string& ip, uint16_t port, std::string* peer_name, int* err) {
  HttpResult r = http_fetch(ip, port);
  if (peer_name) *peer_name = r.peer;
  if (err) *err = r.err;
  return r.err == 0 ? r.body : "";
}

std::string UdpResult::body() const { return reply.substr(0, reply.find('\n')); }

UdpResult udp_request(const std::string& ip, uint16_t port, int timeout_ms) {
  return udp_exchange(ip, port, timeout_ms, false);
}

UdpResult udp_request_connected(const std::string& ip, uint16_t port, int timeout_ms) {
  return udp_exchange(ip, port, timeout_ms, true);
}

}  // namespace sockmesh::lab
