// Retries on other destinations (docs/tunnel.md, "Connect timeout and retries"): an attempt that
// fails before the 200 hands the application's connection, with the bytes it already wrote, to
// the next target; the connect-timeout header bounds the peer's connect and the client's own
// deadline bounds a peer that does not answer at all.
#include <mutex>

#include "tunnel_fixture.h"

namespace sockmesh::proxy::testing {
namespace {

using Outcome = StreamEnd::Outcome;

// A loopback port nothing listens on.
uint16_t closed_port() {
  uint16_t port = 0;
  Fd gone = listen_loopback(&port);
  return port;
}

// A listener whose accept queue is full: it drops further SYNs (connects to it hang).
struct Blackhole {
  Blackhole() {
    listener = Fd(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listener.get(), reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        listen(listener.get(), 0) != 0)
      throw std::runtime_error("blackhole listen");
    getsockname(listener.get(), reinterpret_cast<sockaddr *>(&a), &len);
    port = ntohs(a.sin_port);
    for (int i = 0; i < 2; ++i) {
      queued.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
      connect(queued.back().get(), reinterpret_cast<sockaddr *>(&a), sizeof a);
    }
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  Fd listener;
  uint16_t port = 0;
  std::vector<Fd> queued;
};

class TunnelRetryTest : public TunnelTest {
 public:
  // Carries with retries: `first`, then the targets of `next` in order, one per failed attempt.
  Carried carry_with(Target first, std::vector<Target> next) {
    Fd app = connect_loopback(app_port);
    Fd agent_end = accept_within(app_listener.get());
    if (agent_end.get() < 0) throw std::runtime_error("test: no agent end");
    asio::ip::tcp::socket socket(io);
    socket.assign(asio::ip::tcp::v4(), agent_end.release());
    auto done = std::make_shared<std::promise<CarryResult>>();
    Carried c{std::move(app), done->get_future().share()};
    auto left = std::make_shared<std::vector<Target>>(std::move(next));
    client->carry(
        std::move(socket), source_id, std::move(first),
        [this, left](const AttemptEnd &end) -> std::optional<Target> {
          {
            std::lock_guard lock(ends_mutex);
            ends.push_back(end);
          }
          if (end.connected || left->empty()) return std::nullopt;
          Target t = left->front();
          left->erase(left->begin());
          return t;
        },
        [done](const CarryResult &r) { done->set_value(r); });
    return c;
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(ends_mutex);
    std::vector<std::string> out;
    for (const auto &e : ends)
      out.push_back(e.connected ? "connected" : e.reason + "/" + std::to_string(e.status));
    return out;
  }
  Target to(const std::string &destination, std::chrono::milliseconds timeout = 0ms) const {
    return Target{node(), destination, timeout};
  }

  std::mutex ends_mutex;
  std::vector<AttemptEnd> ends;
};

TEST_F(TunnelRetryTest, FailedAttemptsHandTheBufferedBytesToTheNextDestination) {
  const Peer nobody{asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), closed_port()),
                    node_id};
  // 502 from the peer, then a node that cannot be reached, then the destination.
  Carried c = carry_with(to("127.0.0.1:" + std::to_string(closed_port())),
                         {Target{nobody, destination(), 0ms}, to(destination())});
  // The application writes at once, more than the stream buffers before the 200 (64 KiB): the
  // rest waits in the kernel's socket buffers.
  const size_t total = 1 << 20;
  auto sent =
      std::async(std::launch::async, [&] { return send_pattern(c.app.get(), 7, total, true); });
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  EXPECT_EQ(expect_pattern(dest.get(), 7, total), "");  // every byte once, in order
  EXPECT_EQ(sent.get(), "");
  ASSERT_TRUE(write_all(dest.get(), "reply"));
  dest.shutdown_write();
  EXPECT_EQ(read_string(c.app.get(), 5), "reply");
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("EOF"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kClosed) << r.detail;
  EXPECT_EQ(r.bytes_to_tunnel, total);
  EXPECT_TRUE(wait_until([&] { return seen().size() == 3; }));  // the 200's news is posted
  EXPECT_EQ(seen(), (std::vector<std::string>{"connect_refused/502", "tunnel/0", "connected"}));
  EXPECT_EQ(client->stats().streams_refused, 1u);
  EXPECT_EQ(client->stats().streams_opened, 1u);
}

TEST_F(TunnelRetryTest, TheLastFailureEndsTheConnectionAsItFailed) {
  Carried c = carry_with(to("127.0.0.1:" + std::to_string(closed_port())),
                         {to("127.0.0.1:" + std::to_string(closed_port()))});
  ASSERT_TRUE(write_all(c.app.get(), "hello"));
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(seen(), (std::vector<std::string>{"connect_refused/502", "connect_refused/502"}));
}

TEST_F(TunnelRetryTest, ADeniedConnectIsNotRetried) {
  set_policy([](const pki::SpiffeId &, const asio::ip::tcp::endpoint &) {
    return Decision{false, "deny", "no"};
  });
  Carried c = carry_with(to(destination()), {to(destination())});
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(c.wait().status, 403);
  EXPECT_TRUE(seen().empty());
  set_policy(nullptr);
}

TEST_F(TunnelRetryTest, TheConnectTimeoutHeaderBoundsThePeersConnectUpToItsLimit) {
  Blackhole hole;
  // The peer's own connect_timeout is 5 s; the attempt asks for 300 ms.
  auto begin = std::chrono::steady_clock::now();
  Carried c = carry_with(to(hole.address(), 300ms), {to(destination(), 300ms)});
  ASSERT_TRUE(write_all(c.app.get(), "ping"));
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  EXPECT_EQ(read_string(dest.get(), 4), "ping");
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(wait_until([&] { return seen().size() == 2; }));
  EXPECT_EQ(seen(), (std::vector<std::string>{"connect_timeout/504", "connected"}));
  dest.reset();
  c.wait();

  // A peer whose limit is lower cuts what is asked for to it.
  TunnelLimits capped;
  capped.max_connect_timeout = 200ms;
  start_server(capped);
  begin = std::chrono::steady_clock::now();
  Carried d = carry_with(to(hole.address(), 30000ms), {});
  EXPECT_EQ(end_name(read_to_end(d.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(d.wait().status, 504);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s);
}

TEST_F(TunnelRetryTest, MalformedTimeoutHeaderValuesAreRefused) {
  EXPECT_EQ(parse_connect_timeout("300"), std::chrono::milliseconds(300));
  EXPECT_EQ(parse_connect_timeout("600000"), std::chrono::milliseconds(600000));
  for (const char *bad : {"", "0", "-1", "1.5", "300ms", " 300", "1234567890"})
    EXPECT_EQ(parse_connect_timeout(bad), std::nullopt) << bad;
}

TEST_F(TunnelRetryTest, ANodeThatNeverAnswersFailsTheAttemptAtTimeoutPlusMargin) {
  TunnelLimits quick;
  quick.attempt_margin = 200ms;
  start_client(quick);
  // Accepts TCP (the kernel does) but never speaks TLS.
  uint16_t mute_port = 0;
  Fd mute = listen_loopback(&mute_port);
  const Peer silent{asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), mute_port), node_id};
  const auto begin = std::chrono::steady_clock::now();
  Carried c = carry_with(Target{silent, destination(), 100ms}, {to(destination(), 100ms)});
  ASSERT_TRUE(write_all(c.app.get(), "ping"));
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  EXPECT_EQ(read_string(dest.get(), 4), "ping");
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(wait_until([&] { return seen().size() == 2; }));
  EXPECT_EQ(seen(), (std::vector<std::string>{"attempt_timeout/0", "connected"}));
  dest.reset();
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  c.wait();
}

}  // namespace
}  // namespace sockmesh::proxy::testing
