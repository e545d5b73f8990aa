#include "sockmesh/lab/echo_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

std::string endpoint_string(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return fmt::format("{}:{}", ip, ntohs(a.sin_port));
}

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

}  // namespace

int run_echo_server(uint16_t port, const std::string& name) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (lfd < 0) {
    std::fprintf(stderr, "echo-server: socket: %s\n", std::strerror(errno));
    return 1;
  }
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 1024) != 0) {
    std::fprintf(stderr, "echo-server: listen on 0.0.0.0:%u: %s\n", port, std::strerror(errno));
    ::close(lfd);
    return 1;
  }
  std::map<int, Connection> conns;
  std::vector<pollfd> fds;
  for (;;) {
    fds.assign(1, {lfd, POLLIN, 0});
    for (const auto& [fd, c] : conns) fds.push_back({fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "echo-server: poll: %s\n", std::strerror(errno));
      return 1;
    }
    for (size_t i = 1; i < fds.size(); ++i) {
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
    if (fds[0].revents & POLLIN) {
      for (;;) {
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        conns[fd].peer = endpoint_string(peer);
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
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    r.err = EINVAL;
    return r;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail();
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) r.peer = endpoint_string(peer);
  const std::string request = fmt::format("GET / HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n", ip, port);
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

}  // namespace sockmesh::lab
