// The upgrade handover's protocol, both ends in one process: listening sockets passed with
// SCM_RIGHTS arrive as working descriptors; a malformed request, a refusal, a silent agent and a
// malformed answer each end the handover with its exact error, and nothing is handed over then.
#include "upgrade/handover.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

namespace sockmesh::upgrade {
namespace {

using namespace std::chrono_literals;

class HandoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/sockmesh-handover-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/handover.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A raw client: connects and sends `text` (unless empty); returns the connection.
  UniqueFd raw_client(const std::string &text) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
    if (!text.empty())
      EXPECT_EQ(::send(fd.get(), text.data(), text.size(), 0), ssize_t(text.size()));
    return fd;
  }
  static std::string read_packet(int fd) {
    char buf[600];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, size_t(n)) : "";
  }

  // The new agent's error when a serving agent reads its request and answers `answer`.
  std::string error_when_answered(const std::string &answer) {
    HandoverListener listener(path_);
    std::thread old_agent([&] {
      pollfd p{listener.fd(), POLLIN, 0};
      ASSERT_EQ(::poll(&p, 1, 5000), 1);
      UniqueFd conn(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
      read_packet(conn.get());
      ::send(conn.get(), answer.data(), answer.size(), 0);
    });
    std::string error = "no error";
    try {
      request_handover(path_, 5s);
    } catch (const std::runtime_error &e) {
      error = e.what();
    }
    old_agent.join();
    return error;
  }

  std::string dir_, path_;
};

TEST_F(HandoverTest, NobodyServingIsAColdStart) {
  EXPECT_FALSE(request_handover(path_, 1s).has_value());
}

TEST_F(HandoverTest, ListeningSocketsArriveWorking) {
  HandoverListener listener(path_);
  EXPECT_EQ(std::filesystem::status(path_).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // A listening TCP socket on loopback, as the agent's.
  UniqueFd tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(tcp.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(tcp.get(), 8), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(tcp.get(), reinterpret_cast<sockaddr *>(&addr), &len), 0);

  std::thread old_agent([&] {
    pollfd p{listener.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    auto connection = listener.accept_request(2s);
    ASSERT_TRUE(connection.has_value());
    HandoverListener::send_listeners(connection->get(), {tcp.get()});
    EXPECT_EQ(read_packet(connection->get()), "sockmesh-handover/1 taken");
  });
  auto handover = request_handover(path_, 5s);
  ASSERT_TRUE(handover.has_value());
  EXPECT_EQ(handover->previous, getpid());
  ASSERT_EQ(handover->listeners.size(), 1u);
  // The old end lets go of its descriptor; a client connecting now is accepted on the new one.
  const int received = handover->listeners[0].get();
  confirm_taken(*handover);
  old_agent.join();
  tcp.reset();
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
  UniqueFd accepted(::accept4(received, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid());
  ASSERT_EQ(::write(client.get(), "bytes", 5), 5);
  char buf[8] = {};
  ASSERT_EQ(::read(accepted.get(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "bytes");
}

TEST_F(HandoverTest, AMalformedRequestIsRefusedWithTheExpectedForm) {
  HandoverListener listener(path_);
  auto client = raw_client("give me your sockets");
  EXPECT_FALSE(listener.accept_request(1s).has_value());
  EXPECT_EQ(read_packet(client.get()),
            "sockmesh-handover/1 refused malformed request \"give me your sockets\" (expected "
            "\"sockmesh-handover/1 request pid=<pid>\")");
}

TEST_F(HandoverTest, ARequestNamingAnotherPidIsRefused) {
  HandoverListener listener(path_);
  auto client = raw_client("sockmesh-handover/1 request pid=1");
  EXPECT_FALSE(listener.accept_request(1s).has_value());
  EXPECT_EQ(read_packet(client.get()),
            "sockmesh-handover/1 refused request names pid 1, the caller is pid " +
                std::to_string(getpid()));
}

TEST_F(HandoverTest, ACallerThatSaysNothingIsRefusedAfterTheTimeout) {
  HandoverListener listener(path_);
  auto client = raw_client("");
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_FALSE(listener.accept_request(200ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 200ms);
  EXPECT_EQ(read_packet(client.get()),
            "sockmesh-handover/1 refused no request: no answer within 200 ms");
}

TEST_F(HandoverTest, ARefusalReachesTheNewAgentAsItsError) {
  EXPECT_EQ(error_when_answered("sockmesh-handover/1 refused draining already"),
            "handover refused by the serving agent: draining already");
}

TEST_F(HandoverTest, ASilentAgentIsAnErrorAfterTheTimeout) {
  HandoverListener listener(path_);  // never accepts: the request waits in its backlog
  try {
    request_handover(path_, 150ms);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              "handover from the serving agent (" + path_ + "): no answer within 150 ms");
  }
}

TEST_F(HandoverTest, AnAnswerAnnouncingOtherCountsIsAnError) {
  // Three listeners announced, no descriptor attached.
  EXPECT_EQ(
      error_when_answered("sockmesh-handover/1 listeners count=3 pid=" + std::to_string(getpid())),
      "handover: the serving agent announced 3 listeners and sent 0");
}

TEST(HandoverMessageTest, ListenersMessageParsesOnlyItsExactForm) {
  auto m = parse_listeners_message("sockmesh-handover/1 listeners count=3 pid=42");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->count, 3u);
  EXPECT_EQ(m->pid, 42);
  for (const char *bad :
       {"", "sockmesh-handover/1 listeners count=3", "sockmesh-handover/2 listeners count=3 pid=42",
        "sockmesh-handover/1 listeners count=9 pid=42",
        "sockmesh-handover/1 listeners count=3 pid=0",
        "sockmesh-handover/1 listeners count=-1 pid=42",
        "sockmesh-handover/1 listeners count=3x pid=42",
        "sockmesh-handover/1 listeners count=3 pid=42 extra",
        "sockmesh-handover/1  listeners count=3 pid=42",
        "sockmesh-handover/1 listeners count=3 pid=99999999999"})
    EXPECT_FALSE(parse_listeners_message(bad).has_value()) << bad;
}

}  // namespace
}  // namespace sockmesh::upgrade
