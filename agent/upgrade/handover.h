// The upgrade handover between two agents of one node (docs/upgrades.md): the serving agent
// passes its listening sockets to the agent that replaces it over a unix socket (SCM_RIGHTS), so
// that no captured or tunnel connection is refused while agents change, then drains.
//
// Protocol, version 1, over a SOCK_SEQPACKET socket at /run/sockmesh/<node>/handover.sock (0600,
// in a 0700 directory; the serving agent also checks that the caller's uid is its own). Each
// message is one packet of at most 512 bytes of text:
//   new -> old   "sockmesh-handover/1 request pid=<pid>"
//   old -> new   "sockmesh-handover/1 listeners count=<n> pid=<pid>" with n descriptors attached
//                (captured IPv4, captured IPv6, tunnel; 0 for an agent without a proxy), or
//                "sockmesh-handover/1 refused <reason>"
//   new -> old   "sockmesh-handover/1 taken" once the new agent serves
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sockmesh/common/unique_fd.h"

namespace sockmesh::upgrade {

inline constexpr const char *kProtocol = "sockmesh-handover/1";

// The path of a node's handover socket.
std::string handover_socket(const std::string &node);

// The new agent's side. What the serving agent handed over.
struct Handover {
  UniqueFd connection;  // to the previous agent, for confirm_taken()
  std::vector<UniqueFd> listeners;
  pid_t previous = 0;
};

// Asks the agent serving at `path` for its listeners. nullopt when no agent listens there (a
// cold start); throws std::runtime_error when one answers but the handover fails (refused, a
// malformed answer, no answer within `timeout`).
std::optional<Handover> request_handover(const std::string &path,
                                         std::chrono::milliseconds timeout);

// Tells the previous agent that this one serves now. Best effort: the previous agent drains
// either way.
void confirm_taken(Handover &handover);

// The serving agent's side: a listening handover socket.
class HandoverListener {
 public:
  // Binds `path` (replacing a stale socket file); throws std::runtime_error when it cannot.
  explicit HandoverListener(std::string path);
  ~HandoverListener();  // closes and removes the socket file
  HandoverListener(const HandoverListener &) = delete;
  HandoverListener &operator=(const HandoverListener &) = delete;

  int fd() const { return listener_.get(); }

  // Accepts one caller and reads its request (within `timeout`): the connection when it is a
  // well-formed request from a caller with this process's uid; nullopt otherwise, after telling
  // the caller why (logged as event=handover_refused).
  std::optional<UniqueFd> accept_request(std::chrono::milliseconds timeout);

  // Answers an accepted request with `listeners`. Throws std::runtime_error when it cannot.
  static void send_listeners(int connection, const std::vector<int> &listeners);

 private:
  std::string path_;
  UniqueFd listener_;
};

// Parses "sockmesh-handover/1 listeners count=<n> pid=<pid>" (exposed for tests and fuzzing):
// nullopt unless it is exactly that with n <= 8 and pid > 0.
struct ListenersMessage {
  size_t count = 0;
  pid_t pid = 0;
};
std::optional<ListenersMessage> parse_listeners_message(const std::string &text);

}  // namespace sockmesh::upgrade
