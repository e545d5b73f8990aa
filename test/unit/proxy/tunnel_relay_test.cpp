// The tunnel's data path: bytes, half-close, resets, many streams on one connection, and
// backpressure with bounded memory.
#include <asio/post.hpp>

#include "tunnel_fixture.h"

namespace sockmesh::proxy::testing {
namespace {

using Outcome = StreamEnd::Outcome;

// Both directions at once: the application sends pattern 1 and the destination pattern 2, each
// `size` bytes followed by its write side shut; each end checks what it received.
void transfer_both_ways(TunnelTest::Carried &c, Fd &dest, size_t size) {
  std::string app_sent, app_got, dest_sent, dest_got;
  std::thread app_writer([&] { app_sent = send_pattern(c.app.get(), 1, size, true); });
  std::thread dest_writer([&] { dest_sent = send_pattern(dest.get(), 2, size, true); });
  std::thread dest_reader([&] { dest_got = expect_pattern(dest.get(), 1, size); });
  app_got = expect_pattern(c.app.get(), 2, size);
  app_writer.join();
  dest_writer.join();
  dest_reader.join();
  EXPECT_EQ(app_sent, "");
  EXPECT_EQ(dest_sent, "");
  EXPECT_EQ(dest_got, "") << "application -> destination";
  EXPECT_EQ(app_got, "") << "destination -> application";
}

class TransferTest : public TunnelTest, public ::testing::WithParamInterface<size_t> {};

TEST_P(TransferTest, BytesArriveIntactInBothDirections) {
  const size_t size = GetParam();
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);

  auto start = std::chrono::steady_clock::now();
  transfer_both_ways(c, dest, size);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (size >= (64u << 20)) {
    std::printf("[ timing   ] %zu MiB each way in %.2f s\n", size >> 20, seconds);
  }

  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kClosed) << r.detail;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.bytes_to_tunnel, size);
  EXPECT_EQ(r.bytes_from_tunnel, size);
  ASSERT_TRUE(wait_until([&] { return server->stats().streams_closed == 1; }));
  TunnelStats s = server->stats();
  EXPECT_EQ(s.bytes_to_tunnel, size);
  EXPECT_EQ(s.bytes_from_tunnel, size);
  EXPECT_EQ(s.streams_reset, 0u);
  EXPECT_EQ(client->stats().buffered_bytes, 0u);
  EXPECT_EQ(server->stats().buffered_bytes, 0u);
  EXPECT_EQ(client->stats().buffer_memory, 0u);
  EXPECT_EQ(server->stats().buffer_memory, 0u);
}

INSTANTIATE_TEST_SUITE_P(Sizes, TransferTest,
                         ::testing::Values(size_t{1}, size_t{64} << 10, size_t{1} << 20,
                                           size_t{256} << 20),
                         [](const ::testing::TestParamInfo<size_t> &info) {
                           size_t n = info.param;
                           return n >= (1u << 20)   ? std::to_string(n >> 20) + "MiB"
                                  : n >= (1u << 10) ? std::to_string(n >> 10) + "KiB"
                                                    : std::to_string(n) + "B";
                         });

TEST_F(TunnelTest, CarriesToAnIpv6Destination) {
  Fd listener(socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(listen(listener.get(), 4), 0);
  getsockname(listener.get(), reinterpret_cast<sockaddr *>(&a), &len);
  Carried c = carry("[::1]:" + std::to_string(ntohs(a.sin6_port)), node(), source_id);
  Fd dest = accept_within(listener.get());
  ASSERT_GE(dest.get(), 0);
  ASSERT_TRUE(write_all(c.app.get(), "over v6"));
  EXPECT_EQ(read_string(dest.get(), 7), "over v6");
  c.app.shutdown_write();
  dest.close();
  EXPECT_EQ(read_to_end(c.app.get()), End::kEof);
  EXPECT_EQ(c.wait().outcome, Outcome::kClosed);
}

TEST_F(TunnelTest, ApplicationShutsWriteFirstAndStillReceivesTheLateReply) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);

  ASSERT_TRUE(write_all(c.app.get(), "request"));
  c.app.shutdown_write();
  // The destination sees the request and then EOF: the half-close crossed the tunnel.
  EXPECT_EQ(read_string(dest.get(), 7), "request");
  size_t extra = 0;
  EXPECT_EQ(read_to_end(dest.get(), &extra), End::kEof);
  EXPECT_EQ(extra, 0u);
  // Only now does it answer, and the application, which can no longer write, reads it all.
  std::string reply = pattern(7, 300000);
  ASSERT_TRUE(write_all(dest.get(), reply));
  dest.shutdown_write();
  EXPECT_EQ(read_string(c.app.get(), reply.size()), reply);
  EXPECT_EQ(read_to_end(c.app.get()), End::kEof);

  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kClosed) << r.detail;
  EXPECT_EQ(r.bytes_to_tunnel, 7u);
  EXPECT_EQ(r.bytes_from_tunnel, reply.size());
}

TEST_F(TunnelTest, DestinationShutsWriteFirstAndStillReceives) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);

  ASSERT_TRUE(write_all(dest.get(), "banner"));
  dest.shutdown_write();
  EXPECT_EQ(read_string(c.app.get(), 6), "banner");
  EXPECT_EQ(read_to_end(c.app.get()), End::kEof);
  // The application keeps talking after the destination's EOF.
  std::string late = pattern(8, 200000);
  ASSERT_TRUE(write_all(c.app.get(), late));
  c.app.shutdown_write();
  EXPECT_EQ(read_string(dest.get(), late.size()), late);
  EXPECT_EQ(read_to_end(dest.get()), End::kEof);

  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kClosed) << r.detail;
}

TEST_F(TunnelTest, ResetByTheApplicationResetsTheDestination) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  ASSERT_TRUE(write_all(c.app.get(), "hello"));
  EXPECT_EQ(read_string(dest.get(), 5), "hello");

  c.app.reset();
  EXPECT_EQ(end_name(read_to_end(dest.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kReset) << r.detail;
  ASSERT_TRUE(wait_until([&] { return server->stats().streams_reset == 1; }));
  EXPECT_EQ(client->stats().streams_reset, 1u);
}

TEST_F(TunnelTest, ResetByTheDestinationResetsTheApplication) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  ASSERT_TRUE(write_all(dest.get(), "hello"));
  EXPECT_EQ(read_string(c.app.get(), 5), "hello");

  dest.reset();
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kReset) << r.detail;
  ASSERT_TRUE(wait_until([&] { return server->stats().streams_reset == 1; }));
}

TEST_F(TunnelTest, ResetAfterHalfCloseIsStillPassedOn) {
  // The application shut its write side, so nothing reads its socket any more; its later
  // reset must still reach the destination while the destination's direction is open.
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  c.app.shutdown_write();
  EXPECT_EQ(read_to_end(dest.get()), End::kEof);
  ASSERT_TRUE(write_all(dest.get(), "still here"));
  EXPECT_EQ(read_string(c.app.get(), 10), "still here");

  c.app.reset();
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kReset) << r.detail;
  // The destination learns it at its next write (or read).
  bool reset_seen = wait_until([&] {
    return ::send(dest.get(), "x", 1, MSG_NOSIGNAL) < 0 && (errno == ECONNRESET || errno == EPIPE);
  });
  EXPECT_TRUE(reset_seen);
}

TEST_F(TunnelTest, FiveHundredConcurrentStreamsShareOnePooledConnection) {
  constexpr int kStreams = 500;
  constexpr size_t kBytes = 4096;
  std::vector<Carried> apps;
  apps.reserve(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    apps.push_back(carry());
    ASSERT_TRUE(write_all(apps.back().app.get(), pattern(1000 + i, kBytes)));
  }
  // The destination echoes every connection (in the order they arrive, which need not be the
  // order of the applications: each application checks its own data comes back).
  std::vector<Fd> dests;
  for (int i = 0; i < kStreams; ++i) {
    dests.push_back(accept_destination());
    ASSERT_GE(dests.back().get(), 0) << "connection " << i;
  }
  // All 500 are open at once, on one TLS connection each side.
  ASSERT_TRUE(wait_until([&] {
    auto conns = server->connections();
    return conns.size() == 1 && conns[0].streams_active == kStreams;
  }));
  EXPECT_EQ(client->connections(), 1u);
  EXPECT_EQ(server->stats().connections_opened, 1u);
  EXPECT_EQ(client->stats().connections_opened, 1u);
  EXPECT_EQ(client->stats().pool_misses, 1u);
  EXPECT_EQ(client->stats().pool_hits, static_cast<uint64_t>(kStreams - 1));

  for (auto &d : dests) {
    std::string got = read_string(d.get(), kBytes);
    ASSERT_EQ(got.size(), kBytes);
    ASSERT_TRUE(write_all(d.get(), got));
  }
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_EQ(read_string(apps[i].app.get(), kBytes), pattern(1000 + i, kBytes)) << "stream " << i;
  }
  // 500 open, idle streams hold no buffer memory on either side.
  EXPECT_TRUE(wait_until([&] {
    return client->stats().buffer_memory == 0 && server->stats().buffer_memory == 0;
  })) << "client "
      << client->stats().buffer_memory << ", server " << server->stats().buffer_memory;
  for (int i = 0; i < kStreams; ++i) apps[i].app.shutdown_write();
  for (auto &d : dests) {
    ASSERT_EQ(read_to_end(d.get()), End::kEof);
    d.close();
  }
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(read_to_end(apps[i].app.get()), End::kEof);
    CarryResult r = apps[i].wait();
    EXPECT_EQ(r.outcome, Outcome::kClosed) << "stream " << i << ": " << r.detail;
  }
  EXPECT_EQ(client->connections(), 1u);  // pooled, idle, kept for the next stream
  EXPECT_EQ(server->stats().streams_closed, static_cast<uint64_t>(kStreams));
}

TEST_F(TunnelTest, StreamRefusedUnprocessedIsRetriedOnAnotherConnection) {
  // A server that takes one stream per connection, and a client that submits two before it has
  // heard so: the second is refused by the server (REFUSED_STREAM) or, when the server's
  // SETTINGS came first, held back by nghttp2 and handed back by the session. Either way it must
  // go to a new connection instead of resetting the application or waiting for the first.
  TunnelLimits one;
  one.max_concurrent_streams = 1;
  start_server(one);
  std::promise<void> go;
  asio::post(io, [held = go.get_future().share()] { held.wait(); });  // both carries queue up
  Carried a = carry();
  Carried b = carry();
  go.set_value();
  Fd a_dest = accept_destination();
  Fd b_dest = accept_destination();
  ASSERT_GE(a_dest.get(), 0);
  ASSERT_GE(b_dest.get(), 0);
  for (Carried *c : {&a, &b}) {
    ASSERT_TRUE(write_all(c->app.get(), "ping"));
    c->app.shutdown_write();
  }
  for (Fd *d : {&a_dest, &b_dest}) {
    EXPECT_EQ(read_string(d->get(), 4), "ping");
    EXPECT_EQ(read_to_end(d->get()), End::kEof);
    d->close();
  }
  EXPECT_EQ(a.wait().outcome, Outcome::kClosed);
  EXPECT_EQ(b.wait().outcome, Outcome::kClosed);
  EXPECT_EQ(client->stats().streams_retried, 1u);
  EXPECT_EQ(client->stats().streams_reset, 0u);
  EXPECT_EQ(client->connections(), 2u);
  EXPECT_EQ(server->stats().connections_opened, 2u);
}

TEST_F(TunnelTest, SlowDestinationThrottlesTheApplicationWithBoundedMemory) {
  constexpr size_t kTotal = 64u << 20;
  const TunnelLimits limits;
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);

  std::atomic<size_t> written{0};
  std::string sent;
  std::thread writer([&] { sent = send_pattern(c.app.get(), 3, kTotal, true, &written); });

  // The destination reads nothing: the kernel buffers fill, then the inbound stream's buffer
  // up to the window, then the outbound stream's, and the client stops reading the application,
  // whose writes block. That state must last (checked 50 times in a row, >= 100 ms): without
  // backpressure the bytes would keep flowing into the tunnel's buffers instead.
  auto throttled = [&] {
    pollfd p{c.app.get(), POLLOUT, 0};
    bool app_blocked = poll(&p, 1, 0) == 0;
    return app_blocked && client->stats().buffered_bytes == limits.stream_send_buffer &&
           server->stats().buffered_bytes > 0;
  };
  int streak = 0;
  bool stalled = wait_until(
      [&] {
        streak = throttled() ? streak + 1 : 0;
        return streak >= 50 || written.load() == kTotal;
      },
      20s);
  EXPECT_TRUE(stalled && streak >= 50)
      << "client buffered " << client->stats().buffered_bytes << ", server "
      << server->stats().buffered_bytes << ", written " << written.load();
  EXPECT_LT(written.load(), kTotal) << "the application was never slowed down";
  EXPECT_LE(server->stats().buffered_bytes, limits.stream_window);
  EXPECT_LE(client->stats().buffered_bytes_peak, limits.stream_buffer_bound());
  EXPECT_LE(server->stats().buffered_bytes_peak, limits.stream_buffer_bound());

  // Now the destination reads everything, intact.
  EXPECT_EQ(expect_pattern(dest.get(), 3, kTotal), "");
  writer.join();
  EXPECT_EQ(sent, "");
  dest.close();
  EXPECT_EQ(read_to_end(c.app.get()), End::kEof);
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kClosed) << r.detail;
  EXPECT_LE(client->stats().buffered_bytes_peak, limits.stream_buffer_bound());
  EXPECT_LE(server->stats().buffered_bytes_peak, limits.stream_buffer_bound());
  EXPECT_LE(client->stats().buffer_memory_peak, limits.stream_memory_bound());
  EXPECT_LE(server->stats().buffer_memory_peak, limits.stream_memory_bound());
  std::printf(
      "[ memory   ] peak buffered: client %llu, server %llu (bound %zu); chunks: client %llu, "
      "server %llu (bound %zu)\n",
      static_cast<unsigned long long>(client->stats().buffered_bytes_peak),
      static_cast<unsigned long long>(server->stats().buffered_bytes_peak),
      limits.stream_buffer_bound(),
      static_cast<unsigned long long>(client->stats().buffer_memory_peak),
      static_cast<unsigned long long>(server->stats().buffer_memory_peak),
      limits.stream_memory_bound());
}

TEST_F(TunnelTest, BytesDroppedByAResetGiveTheConnectionWindowBack) {
  // A connection window of one stream window: if the bytes a reset stream held were not given
  // back to the connection, the next stream on it could not move.
  TunnelLimits tight;
  tight.connection_window = tight.stream_window;
  start_server(tight);
  Carried a = carry();
  Fd a_dest = accept_destination();
  ASSERT_GE(a_dest.get(), 0);
  std::atomic<bool> stop{false};
  std::thread writer([&] { pump_pattern(a.app.get(), 4, stop); });
  // The destination does not read: the streams fill up, then everything stalls, and nothing
  // reads or writes the application's socket when it resets.
  EXPECT_TRUE(wait_until(
      [&] {
        return server->stats().buffered_bytes > tight.stream_window / 2 &&
               client->stats().buffered_bytes == tight.stream_send_buffer;
      },
      20s));
  stop = true;
  writer.join();
  a.app.reset();
  EXPECT_EQ(a.wait().outcome, Outcome::kReset);
  EXPECT_TRUE(wait_until([&] { return server->stats().buffered_bytes == 0; }));

  Carried b = carry();
  Fd b_dest = accept_destination();
  ASSERT_GE(b_dest.get(), 0);
  EXPECT_EQ(client->connections(), 1u);  // the same connection
  transfer_both_ways(b, b_dest, 1u << 20);
  EXPECT_EQ(b.wait().outcome, Outcome::kClosed);
}

TEST_F(TunnelTest, IdlePooledConnectionIsClosedAfterTheIdleTimeout) {
  TunnelLimits limits;
  limits.idle_timeout = 200ms;
  start_client(limits);
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  EXPECT_EQ(client->connections(), 1u);
  c.app.shutdown_write();
  dest.close();
  EXPECT_EQ(read_to_end(c.app.get()), End::kEof);
  EXPECT_EQ(c.wait().outcome, Outcome::kClosed);
  EXPECT_TRUE(wait_until([&] { return client->connections() == 0; }, 5s));
  EXPECT_TRUE(wait_until([&] { return server->connections().empty(); }, 5s));
}

TEST_F(TunnelTest, StoppingTheServerResetsCarriedConnections) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  ASSERT_TRUE(write_all(c.app.get(), "hi"));
  EXPECT_EQ(read_string(dest.get(), 2), "hi");
  server->stop();
  EXPECT_EQ(end_name(read_to_end(dest.get())), std::string("ECONNRESET"));
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(c.wait().outcome, Outcome::kReset);
}

TEST_F(TunnelTest, StoppingTheClientResetsCarriedConnections) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  ASSERT_TRUE(write_all(dest.get(), "hi"));
  EXPECT_EQ(read_string(c.app.get(), 2), "hi");
  client->stop();
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(end_name(read_to_end(dest.get())), std::string("ECONNRESET"));
  EXPECT_EQ(c.wait().outcome, Outcome::kReset);
  EXPECT_TRUE(wait_until([&] { return client->connections() == 0; }));
  // Later carries are refused at once.
  Carried late = carry();
  EXPECT_EQ(end_name(read_to_end(late.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(late.wait().outcome, Outcome::kFailed);
}

// Both ends on one io_context thread, as one agent runs its outbound and inbound sides.
class SharedThreadTest : public TunnelTest {
 protected:
  SharedThreadTest() { share_io_ = true; }
};

TEST_F(SharedThreadTest, BytesHalfCloseAndResetOnOneThread) {
  Carried c = carry();
  Fd dest = accept_destination();
  ASSERT_GE(dest.get(), 0);
  transfer_both_ways(c, dest, 4u << 20);
  EXPECT_EQ(c.wait().outcome, Outcome::kClosed);

  Carried r = carry();
  Fd r_dest = accept_destination();
  ASSERT_GE(r_dest.get(), 0);
  ASSERT_TRUE(write_all(r.app.get(), "x"));
  EXPECT_EQ(read_string(r_dest.get(), 1), "x");
  r_dest.reset();
  EXPECT_EQ(end_name(read_to_end(r.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(r.wait().outcome, Outcome::kReset);
}

// The client's io_context run by three threads: the strand keeps each end's handlers serial.
class MultiThreadTest : public TunnelTest {
 protected:
  MultiThreadTest() { client_threads_ = 3; }
};

TEST_F(MultiThreadTest, ManyStreamsWithSeveralThreadsRunningTheContext) {
  constexpr int kStreams = 64;
  constexpr size_t kBytes = 100000;
  std::vector<Carried> apps;
  std::vector<Fd> dests;
  for (int i = 0; i < kStreams; ++i) {
    apps.push_back(carry());
    dests.push_back(accept_destination());
    ASSERT_GE(dests.back().get(), 0);
  }
  // Every connection at once, both ways, from threads of its own.
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kStreams * 2);
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      std::string sent = send_pattern(apps[i].app.get(), 100 + i, kBytes, true);
      errors[2 * i] = sent.empty() ? expect_pattern(apps[i].app.get(), 500 + i, kBytes) : sent;
    });
  }
  // carry() and accept_destination() went in step, so dests[i] is apps[i]'s destination.
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      std::string sent = send_pattern(dests[i].get(), 500 + i, kBytes, true);
      errors[2 * i + 1] = sent.empty() ? expect_pattern(dests[i].get(), 100 + i, kBytes) : sent;
    });
  }
  for (auto &t : threads) t.join();
  for (const auto &e : errors) EXPECT_EQ(e, "");
  for (auto &c : apps) EXPECT_EQ(c.wait().outcome, Outcome::kClosed);
  EXPECT_EQ(client->connections(), 1u);
}

}  // namespace
}  // namespace sockmesh::proxy::testing
