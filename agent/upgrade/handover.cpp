#include "upgrade/handover.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "sockmesh/common/paths.h"

namespace sockmesh::upgrade {
namespace {

constexpr size_t kMaxMessage = 512;
constexpr size_t kMaxListeners = 8;

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

sockaddr_un address_of(const std::string &path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    throw std::runtime_error("handover socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Waits until `fd` is readable; false when `timeout` passed first.
bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, int(timeout.count()));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

// One packet with up to kMaxListeners descriptors; the descriptors are returned owned.
std::string receive(int fd, std::vector<UniqueFd> *fds, std::chrono::milliseconds timeout) {
  if (!wait_readable(fd, timeout))
    throw std::runtime_error("no answer within " + std::to_string(timeout.count()) + " ms");
  char text[kMaxMessage + 1];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxListeners)];
  iovec iov{text, kMaxMessage};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) fail("recvmsg", errno);
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (fds)
        fds->emplace_back(received);
      else
        ::close(received);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) throw std::runtime_error("message too long");
  return std::string(text, size_t(n));
}

void send_message(int fd, const std::string &text, const std::vector<int> &fds = {}) {
  iovec iov{const_cast<char *>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxListeners)] = {};
  if (!fds.empty()) {
    if (fds.size() > kMaxListeners) throw std::runtime_error("too many listeners to hand over");
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) fail("sendmsg", errno);
}

// "key=<number>" into *value; false unless that is exactly what `word` is.
template <typename T>
bool field(std::string_view word, std::string_view key, T *value) {
  if (word.size() <= key.size() + 1 || word.substr(0, key.size()) != key || word[key.size()] != '=')
    return false;
  const char *begin = word.data() + key.size() + 1, *end = word.data() + word.size();
  auto [ptr, ec] = std::from_chars(begin, end, *value);
  return ec == std::errc() && ptr == end;
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t space = text.find(' ', at);
    const size_t end = space == std::string_view::npos ? text.size() : space;
    out.push_back(text.substr(at, end - at));
    if (space == std::string_view::npos) break;
    at = space + 1;
  }
  return out;
}

}  // namespace

std::string handover_socket(const std::string &node) {
  return paths::run_dir(node) + "/handover.sock";
}

std::optional<ListenersMessage> parse_listeners_message(const std::string &text) {
  const auto w = words(text);
  ListenersMessage m;
  long long pid = 0;
  if (w.size() != 4 || w[0] != kProtocol || w[1] != "listeners" ||
      !field(w[2], "count", &m.count) || !field(w[3], "pid", &pid) || m.count > kMaxListeners ||
      pid <= 0 || pid > (1ll << 30))
    return std::nullopt;
  m.pid = pid_t(pid);
  return m;
}

std::optional<Handover> request_handover(const std::string &path,
                                         std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) fail("socket", errno);
  const sockaddr_un addr = address_of(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) != 0) {
    // Nobody serves the node (no socket file, or a stale one): a cold start.
    if (errno == ENOENT || errno == ECONNREFUSED) return std::nullopt;
    fail("connect to the serving agent's handover socket " + path, errno);
  }
  send_message(fd.get(), std::string(kProtocol) + " request pid=" + std::to_string(getpid()));
  Handover handover;
  std::string answer;
  try {
    answer = receive(fd.get(), &handover.listeners, timeout);
  } catch (const std::exception &e) {
    throw std::runtime_error("handover from the serving agent (" + path + "): " + e.what());
  }
  const auto parsed = parse_listeners_message(answer);
  if (!parsed)
    throw std::runtime_error("handover refused by the serving agent: " +
                             (answer.rfind(std::string(kProtocol) + " refused ", 0) == 0
                                  ? answer.substr(std::strlen(kProtocol) + 9)
                                  : "unexpected answer \"" + answer.substr(0, 80) + "\""));
  if (parsed->count != handover.listeners.size())
    throw std::runtime_error("handover: the serving agent announced " +
                             std::to_string(parsed->count) + " listeners and sent " +
                             std::to_string(handover.listeners.size()));
  handover.previous = parsed->pid;
  handover.connection = std::move(fd);
  return handover;
}

void confirm_taken(Handover &handover) {
  if (!handover.connection.valid()) return;
  try {
    send_message(handover.connection.get(), std::string(kProtocol) + " taken");
  } catch (const std::exception &e) {
    spdlog::warn("event=handover_confirm_failed previous_pid={} error=\"{}\"", handover.previous,
                 e.what());
  }
  handover.connection.reset();
}

HandoverListener::HandoverListener(std::string path) : path_(std::move(path)) {
  listener_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_.valid()) fail("socket", errno);
  const sockaddr_un addr = address_of(path_);
  ::unlink(path_.c_str());           // a stale file of an agent that crashed; the node lock is ours
  const mode_t old = ::umask(0177);  // the socket file is 0600
  const int bound =
      ::bind(listener_.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr));
  const int err = errno;
  ::umask(old);
  if (bound != 0) fail("bind handover socket " + path_, err);
  if (::listen(listener_.get(), 4) != 0) fail("listen on handover socket " + path_, errno);
}

HandoverListener::~HandoverListener() {
  listener_.reset();
  ::unlink(path_.c_str());
}

std::optional<UniqueFd> HandoverListener::accept_request(std::chrono::milliseconds timeout) {
  UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) return std::nullopt;  // EAGAIN: the caller went away
  auto refuse = [&](const std::string &reason) -> std::optional<UniqueFd> {
    spdlog::warn("event=handover_refused reason=\"{}\"", reason);
    try {
      send_message(conn.get(), std::string(kProtocol) + " refused " + reason);
    } catch (const std::exception &) {
    }
    return std::nullopt;
  };
  ucred peer{};
  socklen_t len = sizeof(peer);
  if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0)
    return refuse(std::string("cannot read the caller's credentials: ") + std::strerror(errno));
  if (peer.uid != ::geteuid())
    return refuse("caller uid " + std::to_string(peer.uid) + " is not this agent's uid " +
                  std::to_string(::geteuid()));
  std::string request;
  try {
    request = receive(conn.get(), nullptr, timeout);
  } catch (const std::exception &e) {
    return refuse(std::string("no request: ") + e.what());
  }
  const auto w = words(request);
  long long pid = 0;
  if (w.size() != 3 || w[0] != kProtocol || w[1] != "request" || !field(w[2], "pid", &pid) ||
      pid <= 0)
    return refuse("malformed request \"" + request.substr(0, 80) + "\" (expected \"" + kProtocol +
                  " request pid=<pid>\")");
  if (pid != peer.pid)
    return refuse("request names pid " + std::to_string(pid) + ", the caller is pid " +
                  std::to_string(peer.pid));
  spdlog::info("event=handover_requested by_pid={}", pid);
  return conn;
}

void HandoverListener::send_listeners(int connection, const std::vector<int> &listeners) {
  send_message(connection,
               std::string(kProtocol) + " listeners count=" + std::to_string(listeners.size()) +
                   " pid=" + std::to_string(getpid()),
               listeners);
}

}  // namespace sockmesh::upgrade
