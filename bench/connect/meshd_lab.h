// What the benchmarks that drive meshd in a lab share (bench/connect, bench/resilience): meshd in
// file mode and its config file, its `event=config_applied` log lines, connect samples run inside a
// pod, and the run's directory and results file.
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connect_loop.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {

// meshd's config with no resources. Not an empty file: meshd (agent.cpp, reload) skips a text equal
// to its last rejected one, which starts out empty, so a change to an empty file is never applied.
inline constexpr const char *kNoServices = "# bench: no services\n";

// Written to path.tmp, then renamed: meshd must never read a half-written config.
void write_file(const std::string &path, const std::string &text);
std::string read_file(const std::string &path);

// lab.run_in_pod, throwing with the command line when it exits non-zero.
void run_checked(lab::Lab &lab, const std::string &pod, const std::vector<std::string> &argv,
                 std::string *out = nullptr);

// meshd's `event=config_applied` line (agent/agent.cpp).
struct Applied {
  long generation = 0, services = 0, vips = 0, duration_us = 0;
  long added = 0, updated = 0, removed = 0, unchanged = 0;  // VIP ports, by what the apply did
};

// A meshd in file mode on one lab node, capturing one cgroup.
struct Meshd {
  pid_t pid = 0;
  std::string config;  // its --config file
  std::string log;
  long generation = 0;              // of the last config it applied
  std::chrono::seconds limit{600};  // how long an apply may take
};

// Starts meshd on `node` (1-based) with an empty config and waits until it applied it; its files go
// to `dir`.
Meshd start_meshd(lab::Lab &lab, int node, const std::string &meshd_bin, const std::string &cgroup,
                  const std::string &dir, std::chrono::seconds limit);
// Writes `text` as meshd's config and waits for the apply that reports `services` services. Throws
// when meshd rejects it, exits, or takes longer than meshd.limit.
Applied apply_config(Meshd &meshd, const std::string &text, long services);
// Waits until meshd's log has an apply of `services` services with a generation above
// `after_generation`. Throws when meshd rejects a config, exits, or takes longer than meshd.limit.
Applied wait_applied(const Meshd &meshd, long services, long after_generation);

sockaddr_in socket_address(in_addr addr, uint16_t port);

// time_connects(targets, warmup) in a process inside the pod.
SampleStats sample_in_pod(lab::Lab &lab, const std::string &pod,
                          const std::vector<sockaddr_in> &targets, size_t warmup);

// One connect from the pod to addr:port; 0 or the errno.
int probe(lab::Lab &lab, const std::string &pod, in_addr addr, uint16_t port);

// Probes addr:port from the pod until a connect succeeds; throws after 10 s.
void wait_for_server(lab::Lab &lab, const std::string &pod, in_addr addr, uint16_t port);

std::string self_exe();
std::string command_line(int argc, char **argv);

// What a run produced: the results file's content and the tables for stdout.
struct RunReport {
  nlohmann::json json;
  std::string markdown;
};

// The `run` subcommand around `run`: needs root; gives it a fresh /tmp/sockmesh-bench-XXXXXX for
// logs and config (removed after a success, kept and named after a failure), writes the JSON to
// `out` (when not empty, creating its directory) and the markdown to stdout. Returns main's status.
int run_reported(const std::string &tool, const std::string &out,
                 const std::function<RunReport(const std::string &dir)> &run);

}  // namespace sockmesh::bench
