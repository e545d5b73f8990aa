// sm_xfer: byte-exact TCP transfers for the fast-path lab tests (fastpath_lab_test.cpp). Every
// byte of a stream is a function of its offset and the stream's direction, so a byte delivered
// twice, lost, reordered or delivered into another connection fails the check.
//
//   sm_xfer serve PORT
//       Thread per connection. Reads a 32-byte header (magic, flags, up, down, abort_after), then
//       reads `up` bytes (checked) and sends `down` bytes, concurrently, and logs one line per
//       connection to stdout: "done up=<checked bytes> ok=<0|1> down=<sent> eof=<0|1>".
//       Flags: kServerShutFirst: send everything and shut down its sending side before reading;
//       kServerClose / kServerReset: after reading `abort_after` bytes, close (FIN) or reset
//       (SO_LINGER 0) instead of reading on.
//   sm_xfer run HOST PORT --up N --down N [--conns C] [--mode write|sendfile|splice]
//                         [--nonblock] [--server-shut-first] [--server-close K|--server-reset K]
//       C connections at once (a thread each); blocking sockets (reads wait in poll() first),
//       or --nonblock: one poll loop moving both directions. Prints one line:
//       "conns=<ok> failed=<n> up=<sent> down=<checked> bad=<corrupt streams> error=<first error>"
//       and exits 0 when every connection moved and checked every byte, else 1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr uint32_t kMagic = 0x31584d53;  // "SMX1"
constexpr uint32_t kServerShutFirst = 0x1;
constexpr uint32_t kServerClose = 0x2;
constexpr uint32_t kServerReset = 0x4;

struct Header {
  uint32_t magic;
  uint32_t flags;
  uint64_t up;
  uint64_t down;
  uint64_t abort_after;
};
static_assert(sizeof(Header) == 32);

// The byte at `offset` of the stream in direction `dir` (0 up, 1 down): a mix of the 8-byte
// word's index, so that moved blocks do not line up.
inline uint8_t pattern(uint64_t offset, int dir) {
  uint64_t x = (offset >> 3) + (uint64_t(dir) << 60) + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return uint8_t(x >> ((offset & 7) * 8));
}

void fill(uint8_t *buf, size_t n, uint64_t offset, int dir) {
  for (size_t i = 0; i < n; i++) buf[i] = pattern(offset + i, dir);
}

bool check(const uint8_t *buf, size_t n, uint64_t offset, int dir) {
  for (size_t i = 0; i < n; i++)
    if (buf[i] != pattern(offset + i, dir)) return false;
  return true;
}

bool write_all(int fd, const void *data, size_t n) {
  const auto *p = static_cast<const uint8_t *>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, void *data, size_t n) {
  auto *p = static_cast<uint8_t *>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

// Sends `total` bytes of direction `dir`; false on an error (errno kept).
bool send_stream(int fd, uint64_t total, int dir) {
  std::vector<uint8_t> buf(256 * 1024);
  for (uint64_t off = 0; off < total;) {
    const size_t n = size_t(std::min<uint64_t>(buf.size(), total - off));
    fill(buf.data(), n, off, dir);
    if (!write_all(fd, buf.data(), n)) return false;
    off += n;
  }
  return true;
}

// Reads up to `limit` bytes of direction `dir`, checking each; then whether EOF follows.
struct Received {
  uint64_t bytes = 0;
  bool ok = true;
  bool eof = false;
  int err = 0;
};

// Blocking reads wait in poll() first, as applications with a read deadline do: a blocking read()
// on a fast-path socket woken without data (its own FIN acknowledged, another thread's write)
// fails with EAGAIN in this kernel (tcp_bpf_recvmsg; docs/fastpath.md, "Limits"), while poll()
// waits for data or EOF.
bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  int r;
  while ((r = ::poll(&p, 1, 20000)) < 0 && errno == EINTR) {
  }
  if (r == 0) errno = ETIMEDOUT;
  return r > 0;
}

Received receive_stream(int fd, uint64_t limit, int dir, bool want_eof) {
  Received out;
  std::vector<uint8_t> buf(256 * 1024);
  while (out.bytes < limit) {
    const size_t want = size_t(std::min<uint64_t>(buf.size(), limit - out.bytes));
    if (!wait_readable(fd)) {
      out.err = errno;
      return out;
    }
    ssize_t r = ::read(fd, buf.data(), want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      out.err = errno;
      return out;
    }
    if (r == 0) {
      out.eof = true;
      return out;
    }
    if (!check(buf.data(), size_t(r), out.bytes, dir)) out.ok = false;
    out.bytes += uint64_t(r);
  }
  if (want_eof) {
    char extra;
    ssize_t r = -1;
    if (wait_readable(fd))
      while ((r = ::read(fd, &extra, 1)) < 0 && errno == EINTR) {
      }
    if (r == 0) out.eof = true;
    if (r > 0) out.ok = false;  // more than announced
    if (r < 0) out.err = errno;
  }
  return out;
}

// ---- server ----

std::mutex log_mu;

void serve_one(int fd) {
  Header h{};
  if (!read_all(fd, &h, sizeof(h)) || h.magic != kMagic) {
    std::lock_guard lock(log_mu);
    std::printf("bad-header\n");
    std::fflush(stdout);
    ::close(fd);
    return;
  }
  Received got;
  uint64_t sent = 0;
  int send_err = 0;
  if (h.flags & (kServerClose | kServerReset)) {
    got = receive_stream(fd, h.abort_after, 0, false);
    if (h.flags & kServerReset) {
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
  } else if (h.flags & kServerShutFirst) {
    if (send_stream(fd, h.down, 1))
      sent = h.down;
    else
      send_err = errno;
    ::shutdown(fd, SHUT_WR);
    got = receive_stream(fd, h.up, 0, true);
  } else {
    std::thread writer([&] {
      if (send_stream(fd, h.down, 1))
        sent = h.down;
      else
        send_err = errno;
      ::shutdown(fd, SHUT_WR);
    });
    got = receive_stream(fd, h.up, 0, true);
    writer.join();
  }
  ::close(fd);
  std::lock_guard lock(log_mu);
  std::printf("done up=%llu ok=%d down=%llu eof=%d", (unsigned long long)got.bytes, got.ok ? 1 : 0,
              (unsigned long long)sent, got.eof ? 1 : 0);
  // Errors only when there were some: the tests compare the line whole.
  if (got.err) std::printf(" read_error=%s", strerrorname_np(got.err));
  if (send_err) std::printf(" send_error=%s", strerrorname_np(send_err));
  std::printf("\n");
  std::fflush(stdout);
}

int serve(uint16_t port) {
  int s = ::socket(AF_INET6, SOCK_STREAM, 0);
  int one = 1, zero = 0;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(port);
  addr.sin6_addr = in6addr_any;
  if (::bind(s, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 || ::listen(s, 1024) != 0) {
    std::perror("sm_xfer serve");
    return 2;
  }
  std::printf("listening %u\n", port);
  std::fflush(stdout);
  for (;;) {
    int fd = ::accept(s, nullptr, nullptr);
    if (fd < 0) continue;
    std::thread(serve_one, fd).detach();
  }
}

// ---- client ----

struct Options {
  std::string host;
  uint16_t port = 0;
  uint64_t up = 0, down = 0, abort_after = 0;
  int conns = 1;
  std::string mode = "write";
  bool nonblock = false;
  uint32_t flags = 0;
};

struct Outcome {
  bool ok = false;
  bool corrupt = false;
  uint64_t up = 0, down = 0;
  std::string error;
};

std::string err_text(const char *what, int err) {
  return std::string(what) + ":" + (err ? strerrorname_np(err) : "eof");
}

int connect_to(const Options &o, std::string *error) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res) != 0 || !res) {
    *error = "resolve";
    return -1;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM, 0);
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    *error = err_text("connect", errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

// The upload from a file (sendfile) or a pipe (splice): the kernel moves the pages.
bool upload_zero_copy(int fd, uint64_t total, const std::string &mode, std::string *error) {
  if (mode == "sendfile") {
    int mem = memfd_create("sm_xfer", 0);
    std::vector<uint8_t> buf(1 << 20);
    for (uint64_t off = 0; off < total;) {
      size_t n = size_t(std::min<uint64_t>(buf.size(), total - off));
      fill(buf.data(), n, off, 0);
      if (::pwrite(mem, buf.data(), n, off_t(off)) != ssize_t(n)) {
        *error = "memfd";
        return false;
      }
      off += n;
    }
    off_t offset = 0;
    while (uint64_t(offset) < total) {
      ssize_t s = ::sendfile(fd, mem, &offset, size_t(std::min<uint64_t>(total - offset, 1 << 20)));
      if (s < 0 && errno == EINTR) continue;
      if (s <= 0) {
        *error = err_text("sendfile", s < 0 ? errno : 0);
        ::close(mem);
        return false;
      }
    }
    ::close(mem);
    return true;
  }
  int p[2];
  if (::pipe(p) != 0) {
    *error = "pipe";
    return false;
  }
  std::vector<uint8_t> buf(64 * 1024);
  for (uint64_t off = 0; off < total;) {
    size_t n = size_t(std::min<uint64_t>(buf.size(), total - off));
    fill(buf.data(), n, off, 0);
    for (size_t put = 0; put < n;) {  // a pipe holds 64 KiB: filled, then spliced out
      ssize_t w = ::write(p[1], buf.data() + put, n - put);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        *error = err_text("pipe write", errno);
        return false;
      }
      put += size_t(w);
    }
    size_t left = n;
    while (left > 0) {
      ssize_t s = ::splice(p[0], nullptr, fd, nullptr, left, SPLICE_F_MOVE);
      if (s < 0 && errno == EINTR) continue;
      if (s <= 0) {
        *error = err_text("splice", s < 0 ? errno : 0);
        return false;
      }
      left -= size_t(s);
    }
    off += n;
  }
  ::close(p[0]);
  ::close(p[1]);
  return true;
}

// Non-blocking: upload and download interleaved in one poll loop.
Outcome run_nonblocking(int fd, const Options &o) {
  Outcome out;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<uint8_t> wbuf(64 * 1024), rbuf(256 * 1024);
  uint64_t sent = 0, got = 0;
  size_t wlen = 0, woff = 0;
  bool shut = false, eof = false;
  while (!eof || !shut) {
    if (!shut && sent == o.up && woff == wlen) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    pollfd p{fd, short((eof ? 0 : POLLIN) | (shut ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, 20000) <= 0) {
      out.error = "poll timeout";
      return out;
    }
    if (!shut && (p.revents & POLLOUT)) {
      if (woff == wlen) {
        wlen = size_t(std::min<uint64_t>(wbuf.size(), o.up - sent));
        fill(wbuf.data(), wlen, sent, 0);
        woff = 0;
      }
      ssize_t w = ::send(fd, wbuf.data() + woff, wlen - woff, MSG_NOSIGNAL);
      if (w > 0) {
        woff += size_t(w);
        if (woff == wlen) sent += wlen;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        out.error = err_text("send", errno);
        return out;
      }
    }
    if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      for (;;) {
        ssize_t r = ::read(fd, rbuf.data(), rbuf.size());
        if (r > 0) {
          if (got + uint64_t(r) > o.down || !check(rbuf.data(), size_t(r), got, 1))
            out.corrupt = true;
          got += uint64_t(r);
          continue;
        }
        if (r == 0) eof = true;
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
          out.error = err_text("read", errno);
          return out;
        }
        break;
      }
    }
  }
  out.up = sent;
  out.down = got;
  out.ok = !out.corrupt && sent == o.up && got == o.down && shut;
  if (!out.ok && out.error.empty()) out.error = "short";
  return out;
}

Outcome run_one(const Options &o) {
  Outcome out;
  int fd = connect_to(o, &out.error);
  if (fd < 0) return out;
  Header h{kMagic, o.flags, o.up, o.down, o.abort_after};
  if (!write_all(fd, &h, sizeof(h))) {
    out.error = err_text("header", errno);
    ::close(fd);
    return out;
  }
  if (o.nonblock) {
    out = run_nonblocking(fd, o);
    ::close(fd);
    return out;
  }
  Received got;
  bool sent_ok = true;
  if (o.flags & kServerShutFirst) {
    // The server sends everything and shuts its side first; then this side uploads.
    got = receive_stream(fd, o.down, 1, true);
    sent_ok = o.mode == "write" ? send_stream(fd, o.up, 0)
                                : upload_zero_copy(fd, o.up, o.mode, &out.error);
    if (!sent_ok && out.error.empty()) out.error = err_text("send", errno);
    ::shutdown(fd, SHUT_WR);
  } else {
    sent_ok = o.mode == "write" ? send_stream(fd, o.up, 0)
                                : upload_zero_copy(fd, o.up, o.mode, &out.error);
    if (!sent_ok && out.error.empty()) out.error = err_text("send", errno);
    ::shutdown(fd, SHUT_WR);
    got = receive_stream(fd, o.down, 1, true);
  }
  ::close(fd);
  out.up = sent_ok ? o.up : 0;
  out.down = got.bytes;
  out.corrupt = !got.ok;
  if (got.err && out.error.empty()) out.error = err_text("read", got.err);
  out.ok = sent_ok && got.ok && got.eof && got.bytes == o.down;
  if (!out.ok && out.error.empty()) out.error = got.eof ? "early-eof" : "short";
  return out;
}

int run(const Options &o) {
  std::vector<Outcome> outcomes(size_t(o.conns));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.conns; i++)
    threads.emplace_back([&, i] { outcomes[size_t(i)] = run_one(o); });
  for (auto &t : threads) t.join();
  int ok = 0, failed = 0, bad = 0;
  uint64_t up = 0, down = 0;
  std::string error;
  for (const auto &r : outcomes) {
    ok += r.ok;
    failed += !r.ok;
    bad += r.corrupt;
    up += r.up;
    down += r.down;
    if (!r.ok && error.empty()) error = r.error;
  }
  std::printf("conns=%d failed=%d up=%llu down=%llu bad=%d error=%s\n", ok, failed,
              (unsigned long long)up, (unsigned long long)down, bad,
              error.empty() ? "none" : error.c_str());
  return failed == 0 ? 0 : 1;
}

uint64_t number(const char *text) {
  char *end = nullptr;
  uint64_t v = std::strtoull(text, &end, 10);
  if (!end || *end) {
    std::fprintf(stderr, "sm_xfer: not a number: %s\n", text);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc >= 3 && std::string(argv[1]) == "serve") return serve(uint16_t(number(argv[2])));
  if (argc < 4 || std::string(argv[1]) != "run") {
    std::fprintf(stderr, "usage: sm_xfer serve PORT | sm_xfer run HOST PORT [options]\n");
    return 2;
  }
  Options o;
  o.host = argv[2];
  o.port = uint16_t(number(argv[3]));
  for (int i = 4; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sm_xfer: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--up")
      o.up = number(value());
    else if (a == "--down")
      o.down = number(value());
    else if (a == "--conns")
      o.conns = int(number(value()));
    else if (a == "--mode")
      o.mode = value();
    else if (a == "--nonblock")
      o.nonblock = true;
    else if (a == "--server-shut-first")
      o.flags |= kServerShutFirst;
    else if (a == "--server-close")
      o.flags |= kServerClose, o.abort_after = number(value());
    else if (a == "--server-reset")
      o.flags |= kServerReset, o.abort_after = number(value());
    else {
      std::fprintf(stderr, "sm_xfer: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.mode != "write" && o.mode != "sendfile" && o.mode != "splice") {
    std::fprintf(stderr, "sm_xfer: --mode is write, sendfile or splice\n");
    return 2;
  }
  return run(o);
}
