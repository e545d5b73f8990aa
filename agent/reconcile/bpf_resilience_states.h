// ResilienceStates on the kernel's maps sm_service_states and sm_backend_states. An entry still
// charged with live connections when it is released waits, and is removed by a background pass
// once a second when they have gone (or kept when a set names it again meanwhile).
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "reconcile/resilience_states.h"

namespace sockmesh::reconcile {

class BpfResilienceStates : public ResilienceStates {
 public:
  // The fds stay owned by the caller (the loaded datapath).
  BpfResilienceStates(int service_states_fd, int backend_states_fd);
  ~BpfResilienceStates() override;

  void create(const StateKeys &keys) override;
  void release(const StateKeys &keys) override;
  void keep_only(const StateKeys &keep) override;

  // Entries released but still charged.
  size_t waiting() const;
  // One pass over the waiting entries (what the background thread does every second).
  void collect();

 private:
  bool try_remove_service(uint64_t service);
  bool try_remove_backend(const sm_backend_key &key);

  int services_fd_, backends_fd_;
  mutable std::mutex mu_;
  std::map<uint64_t, int> waiting_services_;          // value unused
  std::map<std::string, sm_backend_key> waiting_backends_;  // by key bytes
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread collector_;
};

}  // namespace sockmesh::reconcile
