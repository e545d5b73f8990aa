#include "meshd_lab.h"

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sockmesh::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool alive(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return false;
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

}  // namespace

// The first applied config after `after_generation` that reports `services` services.
Applied wait_applied(const Meshd &meshd, long services, long after_generation) {
  auto deadline = Clock::now() + meshd.limit;
  for (;;) {
    std::istringstream lines(read_file(meshd.log));
    for (std::string line; std::getline(lines, line);) {
      if (line.find("event=config_rejected") != std::string::npos ||
          line.find("event=config_apply_failed") != std::string::npos)
        throw std::runtime_error("meshd did not apply the config: " + line);
      if (line.find("event=config_applied") == std::string::npos) continue;
      std::map<std::string, long> fields;
      std::istringstream words(line);
      for (std::string word; words >> word;) {
        auto eq = word.find('=');
        if (eq != std::string::npos && eq + 1 < word.size() && std::isdigit(word[eq + 1]))
          fields[word.substr(0, eq)] = std::stol(word.substr(eq + 1));
      }
      Applied a{fields["generation"], fields["services"], fields["vips"],    fields["duration_us"],
                fields["added"],      fields["updated"],  fields["removed"], fields["unchanged"]};
      if (a.generation > after_generation && a.services == services) return a;
    }
    if (!alive(meshd.pid)) throw std::runtime_error("meshd exited; its log: " + meshd.log);
    if (Clock::now() > deadline)
      throw std::runtime_error(fmt::format("meshd did not apply {} services within {} s (log: {})",
                                           services, meshd.limit.count(), meshd.log));
    std::this_thread::sleep_for(20ms);
  }
}

void write_file(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void run_checked(lab::Lab &lab, const std::string &pod, const std::vector<std::string> &argv,
                 std::string *out) {
  int rc = lab.run_in_pod(pod, argv, out);
  if (rc != 0) {
    std::string command;
    for (const auto &a : argv) command += (command.empty() ? "" : " ") + a;
    throw std::runtime_error(fmt::format("in pod {}: `{}` exited {}", pod, command, rc));
  }
}

Meshd start_meshd(lab::Lab &lab, int node, const std::string &meshd_bin, const std::string &cgroup,
                  const std::string &dir, std::chrono::seconds limit) {
  std::filesystem::create_directories(dir + "/config");
  Meshd meshd;
  meshd.config = dir + "/config/mesh.yaml";
  meshd.log = dir + "/meshd.log";
  meshd.limit = limit;
  write_file(meshd.config, kNoServices);
  meshd.pid = lab.spawn_in_node(
      node,
      {meshd_bin, "--node", lab.node_name(node), "--cgroup", cgroup, "--config", meshd.config},
      meshd.log);
  meshd.generation = wait_applied(meshd, 0, 0).generation;
  return meshd;
}

Applied apply_config(Meshd &meshd, const std::string &text, long services) {
  write_file(meshd.config, text);
  Applied applied = wait_applied(meshd, services, meshd.generation);
  meshd.generation = applied.generation;
  return applied;
}

sockaddr_in socket_address(in_addr addr, uint16_t port) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  out.sin_addr = addr;
  out.sin_port = htons(port);
  return out;
}

SampleStats sample_in_pod(lab::Lab &lab, const std::string &pod,
                          const std::vector<sockaddr_in> &targets, size_t warmup) {
  std::string out;
  int rc = lab.call_in_pod(
      pod,
      [&] {
        ::dprintf(STDOUT_FILENO, "%s\n",
                  nlohmann::json(time_connects(targets, warmup)).dump().c_str());
        return 0;
      },
      &out);
  if (rc != 0) throw std::runtime_error(fmt::format("connect loop in pod {} exited {}", pod, rc));
  return nlohmann::json::parse(out).get<SampleStats>();
}

int probe(lab::Lab &lab, const std::string &pod, in_addr addr, uint16_t port) {
  return lab.call_in_pod(pod, [&] {
    auto stats = time_connects({socket_address(addr, port)}, 0);
    return stats.failures ? stats.first_errno : 0;
  });
}

void wait_for_server(lab::Lab &lab, const std::string &pod, in_addr addr, uint16_t port) {
  auto deadline = Clock::now() + 10s;
  while (probe(lab, pod, addr, port) != 0) {
    if (Clock::now() > deadline)
      throw std::runtime_error(fmt::format("no server on :{} in pod {}", port, pod));
    std::this_thread::sleep_for(20ms);
  }
}

std::string self_exe() {
  return std::filesystem::read_symlink("/proc/self/exe");
}

std::string command_line(int argc, char **argv) {
  std::string out;
  for (int i = 0; i < argc; i++) out += (i ? " " : "") + std::string(argv[i]);
  return out;
}

int run_reported(const std::string &tool, const std::string &out,
                 const std::function<RunReport(const std::string &dir)> &run) {
  if (geteuid() != 0) {
    std::cerr << tool << ": run needs root (network namespaces, cgroups, BPF)\n";
    return 1;
  }
  char tmpl[] = "/tmp/sockmesh-bench-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::cerr << tool << ": mkdtemp: " << std::strerror(errno) << "\n";
    return 1;
  }
  const std::string dir = tmpl;
  try {
    RunReport report = run(dir);
    if (!out.empty()) {
      auto parent = std::filesystem::path(out).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent);
      std::ofstream file(out, std::ios::trunc);
      file << report.json.dump(2) << "\n";
      if (!file.flush()) throw std::runtime_error("cannot write " + out);
      std::cerr << tool << ": results in " << out << "\n";
    }
    std::cout << report.markdown;
    std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception &e) {
    std::cerr << tool << ": " << e.what() << "\n" << tool << ": logs kept in " << dir << "\n";
    return 1;
  }
}

}  // namespace sockmesh::bench
