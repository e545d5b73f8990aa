#include "mesh_fixture.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "sockmesh/common/paths.h"
#include "sockmesh/lab/echo_server.h"
#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/v1/admin.grpc.pb.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

const std::vector<std::pair<std::string, int>> kWebPods = {
    {"web-v1-a", 1}, {"web-v1-b", 2}, {"web-v2-a", 2}};

std::string workload_yaml(const lab::Lab &lab, const std::string &name,
                          const std::string &version) {
  std::ostringstream out;
  out << "apiVersion: sockmesh/v1\nkind: Workload\n"
      << "metadata: {name: " << name << ", namespace: demo, labels: {app: web, version: " << version
      << "}}\n"
      << "spec: {node: " << lab.node_name(lab.pod_node(name)) << ", addresses: ["
      << lab.pod_ip(name) << ", \"" << lab.pod_ip6(name) << "\"], cgroupPath: " << name
      << ", serviceAccount: web}\n---\n";
  return out.str();
}

void wait_until(const std::function<bool()> &done, std::chrono::milliseconds limit,
                const std::string &what) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("timed out waiting for " + what);
    std::this_thread::sleep_for(10ms);
  }
}

// One admin call, made again while the agent's connection is being replaced (UNAVAILABLE: a
// restarted or upgraded agent), until `limit` has passed; wait-for-ready bridges an agent that is
// not listening yet.
template <typename Reply, typename Call>
Reply admin_call(v1::Admin::Stub &stub, std::chrono::milliseconds limit, const char *what,
                 Call call) {
  const auto deadline = std::chrono::system_clock::now() + limit;
  for (;;) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(deadline);
    Reply reply;
    const grpc::Status result = call(stub, &context, &reply);
    if (result.ok()) return reply;
    if (result.error_code() != grpc::StatusCode::UNAVAILABLE ||
        std::chrono::system_clock::now() >= deadline)
      throw std::runtime_error(std::string(what) + ": " + result.error_message());
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace

MeshLab::MeshLab(Subsets subsets, Source source, std::vector<lab::PodSpec> extra_pods,
                 std::vector<std::string> meshcp_args,
                 std::map<int, std::vector<std::string>> meshd_args)
    : source_(source), meshcp_args_(std::move(meshcp_args)), meshd_args_(std::move(meshd_args)) {
  lab::LabSpec spec;
  spec.nodes = 2;
  spec.pods = {{"client", 1, ""}};
  for (const auto &[pod, node] : kWebPods) spec.pods.push_back({pod, node, ""});
  for (auto &pod : extra_pods) spec.pods.push_back(std::move(pod));
  lab_ = lab::Lab::up(spec);

  char tmpl[] = "/tmp/sockmesh-lbtest-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;

  // A constructor that throws runs no destructor: the lab goes with lab_, the directory here.
  try {
    for (const auto &[pod, node] : kWebPods)
      lab_->spawn_in_pod(pod, {MESHLAB_BIN, "echo-server", "--port", "8080", "--name", pod},
                         dir_ + "/" + pod + ".log");
    if (source_ == Source::kControlPlane) {
      start_controlplane();
      auto applied = apply(config_text(subsets));
      if (!applied.ok()) throw std::runtime_error("initial apply: " + applied.error_message());
    }
    for (int node = 1; node <= 2; node++) {
      if (source_ == Source::kFile) write_config(node, config_text(subsets));
      start_agent(node);
    }
    for (int node = 1; node <= 2; node++) wait_generation(node, 0);
    for (const auto &[pod, node] : kWebPods) {
      std::string ip = lab_->pod_ip(pod);
      // Probed from inside the client pod: lab addresses mean nothing in the host's netns.
      wait_until(
          [&] {
            return lab_->call_in_pod("client", [&] {
              return lab::http_fetch(ip, 8080).body == pod + "\n" ? 0 : 1;
            }) == 0;
          },
          10s, "echo server in " + pod);
    }
  } catch (...) {
    std::filesystem::remove_all(dir_);
    throw;
  }
}

void MeshLab::start_agent(int node) {
  std::vector<std::string> argv = {MESHD_BIN, "--node", lab_->node_name(node), "--cgroup",
                                   lab_->workload_cgroup(node)};
  if (source_ == Source::kFile) {
    argv.insert(argv.end(), {"--config", config_path(node)});
  } else {
    const std::string state_dir = dir_ + "/state-n" + std::to_string(node);
    argv.insert(argv.end(), {"--controlplane", controlplane_target(), "--state-dir", state_dir});
    // A node joins once, with a one-time token (meshctl node add); a restart uses its identity.
    // A test that gives the node --join-token-file (the cluster token) joins with that instead.
    const auto &extra = meshd_args_[node];
    const bool token_file =
        std::find(extra.begin(), extra.end(), "--join-token-file") != extra.end();
    if (!token_file && !std::filesystem::exists(state_dir + "/identity/node.key")) {
      auto stub = controlplane_stub();
      grpc::ClientContext context;
      v1::AddNodeRequest request;
      request.set_node(lab_->node_name(node));
      v1::AddNodeResponse added;
      const grpc::Status status = stub->AddNode(&context, request, &added);
      if (!status.ok()) throw std::runtime_error("meshcp AddNode: " + status.error_message());
      argv.insert(argv.end(),
                  {"--join-token", added.token(), "--ca-cert-hash", added.ca_cert_hash()});
    }
  }
  if (auto it = meshd_args_.find(node); it != meshd_args_.end())
    for (std::string arg : it->second) {
      if (auto at = arg.find("{dir}"); at != std::string::npos) arg.replace(at, 5, dir_);
      argv.push_back(arg);
    }
  agents_[node] =
      lab_->spawn_in_node(node, argv, dir_ + "/meshd-n" + std::to_string(node) + ".log");
}

void MeshLab::stop_agent(int node) {
  kill(agents_.at(node), SIGTERM);
  wait_until(
      [&] {
        return kill(agents_.at(node), 0) != 0 || waitpid(agents_.at(node), nullptr, WNOHANG) > 0;
      },
      10s, "meshd on node " + std::to_string(node) + " to stop");
}

void MeshLab::kill_agent(int node) {
  kill(agents_.at(node), SIGKILL);
  waitpid(agents_.at(node), nullptr, 0);
}

void MeshLab::start_controlplane() {
  std::vector<std::string> argv = {MESHCP_BIN,
                                   "--state-dir",
                                   dir_ + "/meshcp",
                                   "--api-socket",
                                   dir_ + "/api.sock",
                                   "--listen",
                                   "unix:" + dir_ + "/xds.sock"};
  argv.insert(argv.end(), meshcp_args_.begin(), meshcp_args_.end());
  controlplane_ = lab_->spawn_in_node(1, argv, dir_ + "/meshcp.log");
  wait_until(
      [&] {
        try {
          controlplane_status();
          return true;
        } catch (const std::exception &) {
          return false;
        }
      },
      10s, "meshcp to serve");
}

void MeshLab::kill_controlplane() {
  kill(controlplane_, SIGKILL);
  wait_until(
      [&] { return waitpid(controlplane_, nullptr, WNOHANG) > 0 || kill(controlplane_, 0) != 0; },
      10s, "meshcp to die");
}

grpc::Status MeshLab::apply_resources(const std::vector<v1::Resource> &resources,
                                      v1::ApplyResponse *response) {
  auto stub = controlplane_stub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::ApplyRequest request;
  for (const auto &resource : resources) *request.add_resources() = resource;
  v1::ApplyResponse ignored;
  return stub->Apply(&context, request, response ? response : &ignored);
}

grpc::Status MeshLab::remove(const std::vector<std::string> &names) {
  auto stub = controlplane_stub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::DeleteRequest request;
  for (const auto &name : names) request.add_names(name);
  v1::ApplyResponse ignored;
  return stub->Delete(&context, request, &ignored);
}

std::string MeshLab::agent_log(int node) const {
  std::ifstream in(dir_ + "/meshd-n" + std::to_string(node) + ".log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

grpc::Status MeshLab::apply(const std::string &yaml, v1::ApplyResponse *response) {
  auto loaded = resources::load_yaml_string(yaml, "test.yaml");
  if (!loaded.ok()) throw std::runtime_error("test config does not load: " + loaded.errors[0]);
  std::vector<v1::Resource> resources;
  for (auto &[name, resource] : resources::to_resources(loaded.snapshot))
    resources.push_back(resource);
  return apply_resources(resources, response);
}

std::unique_ptr<v1::ControlPlane::Stub> MeshLab::controlplane_stub() const {
  return v1::ControlPlane::NewStub(
      grpc::CreateChannel("unix:" + dir_ + "/api.sock", grpc::InsecureChannelCredentials()));
}

v1::ControlPlaneStatus MeshLab::controlplane_status() {
  auto stub = controlplane_stub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 2s);
  context.set_wait_for_ready(true);
  v1::ControlPlaneStatus status;
  auto result = stub->GetStatus(&context, v1::ControlPlaneStatusRequest(), &status);
  if (!result.ok()) throw std::runtime_error("meshcp GetStatus: " + result.error_message());
  return status;
}

std::string MeshLab::wait_all_acked() {
  std::string version;
  wait_until(
      [&] {
        try {
          auto status = controlplane_status();
          version = status.version();
          int acked = 0;
          for (const auto &agent : status.agents())
            acked += agent.connected() && agent.acked_version() == version;
          return acked == 2;
        } catch (const std::exception &) {
          return false;
        }
      },
      20s, "every agent to ACK");
  return version;
}

MeshLab::~MeshLab() {
  lab_->down();
  std::string cmd = "rm -rf '" + dir_ + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir_.c_str());
}

std::string MeshLab::config_path(int node) const {
  return dir_ + "/config-n" + std::to_string(node) + ".yaml";
}

std::string MeshLab::config_text(Subsets subsets) const {
  std::ostringstream out;
  out << workload_yaml(*lab_, "web-v1-a", "v1") << workload_yaml(*lab_, "web-v1-b", "v1")
      << workload_yaml(*lab_, "web-v2-a", "v2");
  out << "apiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: web, namespace: demo}\n"
      << "spec:\n  vips: [{address: 10.96.0.10, port: 80}, {address: \"fd00:96::a\", port: 80}]\n"
      << "  endpoints:\n";
  for (const auto &[pod, node] : kWebPods) out << "    - {workload: " << pod << ", port: 8080}\n";
  out << "  subsets:\n"
      << "    - {name: v1, labels: {version: v1}, weight: " << subsets.v1 << "}\n"
      << "    - {name: v2, labels: {version: v2}, weight: " << subsets.v2 << "}\n---\n";
  out << "apiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: empty, namespace: demo}\n"
      << "spec:\n  vips: [{address: 10.96.0.11, port: 80}]\n---\n";
  // UDP, dual stack, round-robin: the echo servers answer datagrams on 8080 too.
  out << "apiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: dns, namespace: demo}\n"
      << "spec:\n  lbPolicy: ROUND_ROBIN\n"
      << "  vips: [{address: 10.96.0.53, port: 53, protocol: UDP},"
      << " {address: \"fd00:96::35\", port: 53, protocol: UDP}]\n  endpoints:\n";
  for (const auto &[pod, node] : kWebPods) out << "    - {workload: " << pod << ", port: 8080}\n";
  out << "---\napiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: sticky, namespace: demo}\n"
      << "spec:\n  lbPolicy: MAGLEV\n  vips: [{address: 10.96.0.20, port: 80}]\n  endpoints:\n";
  for (const auto &[pod, node] : kWebPods) out << "    - {workload: " << pod << ", port: 8080}\n";
  return out.str();
}

void MeshLab::write_config(int node, const std::string &text) {
  std::string tmp = config_path(node) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  if (rename(tmp.c_str(), config_path(node).c_str()) != 0)
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
  written_[node] = text;
}

std::unique_ptr<v1::Admin::Stub> MeshLab::admin_stub(int node) {
  auto &channel = admin_channels_[node];
  if (!channel) {
    grpc::ChannelArguments args;
    // A restarted agent listens again within a second: reconnect at once, not after gRPC's
    // default backoff of up to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    channel = grpc::CreateCustomChannel("unix:" + paths::admin_socket(lab_->node_name(node)),
                                        grpc::InsecureChannelCredentials(), args);
  }
  return v1::Admin::NewStub(channel);
}

v1::AgentStatus MeshLab::status(int node) {
  return admin_call<v1::AgentStatus>(
      *admin_stub(node), 2s, "GetStatus",
      [](auto &stub, auto *c, auto *r) { return stub.GetStatus(c, v1::GetStatusRequest(), r); });
}

v1::TrafficReport MeshLab::traffic(int node) {
  return admin_call<v1::TrafficReport>(
      *admin_stub(node), 5s, "GetTraffic",
      [](auto &stub, auto *c, auto *r) { return stub.GetTraffic(c, v1::GetTrafficRequest(), r); });
}

v1::FastPathReport MeshLab::fast_path(int node) {
  return admin_call<v1::FastPathReport>(*admin_stub(node), 5s, "GetFastPath",
                                        [](auto &stub, auto *c, auto *r) {
                                          return stub.GetFastPath(c, v1::GetFastPathRequest(), r);
                                        });
}

v1::ResilienceReport MeshLab::resilience(int node, const std::string &ns, const std::string &name) {
  v1::GetResilienceRequest request;
  request.set_namespace_(ns);
  request.set_name(name);
  return admin_call<v1::ResilienceReport>(
      *admin_stub(node), 5s, "GetResilience",
      [&](auto &stub, auto *c, auto *r) { return stub.GetResilience(c, request, r); });
}

v1::AgentStatus MeshLab::wait_generation(int node, uint64_t after) {
  v1::AgentStatus last;
  wait_until(
      [&] {
        try {
          last = status(node);
          return last.config().generation() > after;
        } catch (const std::exception &) {
          return false;  // not serving yet
        }
      },
      20s, "generation > " + std::to_string(after) + " on node " + std::to_string(node));
  return last;
}

v1::AgentStatus MeshLab::wait_error(int node) {
  v1::AgentStatus last;
  wait_until(
      [&] {
        last = status(node);
        return !last.config().last_error().empty();
      },
      10s, "a rejected config on node " + std::to_string(node));
  return last;
}

uint64_t MeshLab::counter(int node, const std::string &name) {
  auto current = status(node);
  for (const auto &c : current.counters())
    if (c.name() == name) return c.value();
  throw std::runtime_error("no counter " + name);
}

int connect_as_nobody(const std::string &path, int type) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    const int fd = socket(AF_UNIX, type, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    const int err = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0 ? 0 : errno;
    if (write(pipe_fds[1], &err, sizeof(err)) != sizeof(err)) _exit(3);
    _exit(0);
  }
  close(pipe_fds[1]);
  int err = -1;
  if (read(pipe_fds[0], &err, sizeof(err)) != ssize_t(sizeof(err))) err = -1;
  close(pipe_fds[0]);
  waitpid(pid, nullptr, 0);
  return err;
}

ConnectTally connect_many(lab::Lab &lab, const std::string &pod, const std::string &ip,
                          uint16_t port, int count, std::chrono::milliseconds at_least) {
  std::string out;
  std::string expected_peer =
      (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
  int rc = lab.call_in_pod(
      pod,
      [&] {
        std::map<std::string, int> bodies;
        int failures = 0, wrong_peer = 0;
        std::string first_error;
        const auto until = std::chrono::steady_clock::now() + at_least;
        for (int i = 0; i < count || std::chrono::steady_clock::now() < until; i++) {
          auto result = lab::http_fetch(ip, port);
          if (result.err != 0 || result.body.empty()) {
            if (failures++ == 0) first_error = std::strerror(result.err);
            continue;
          }
          if (result.peer != expected_peer) wrong_peer++;
          bodies[result.body.substr(0, result.body.find('\n'))]++;
        }
        for (const auto &[body, n] : bodies)
          ::dprintf(STDOUT_FILENO, "body %s %d\n", body.c_str(), n);
        ::dprintf(STDOUT_FILENO, "failures %d\nwrong_peer %d\nerror %s\n", failures, wrong_peer,
                  first_error.c_str());
        return 0;
      },
      &out);
  if (rc != 0) throw std::runtime_error("connect loop in " + pod + " exited " + std::to_string(rc));
  ConnectTally tally;
  std::istringstream lines(out);
  std::string word;
  while (lines >> word) {
    if (word == "body") {
      std::string name;
      int n;
      lines >> name >> n;
      tally.bodies[name] = n;
    } else if (word == "failures") {
      lines >> tally.failures;
    } else if (word == "wrong_peer") {
      lines >> tally.wrong_peer;
    } else if (word == "error") {
      std::getline(lines, tally.first_error);
    }
  }
  return tally;
}

}  // namespace sockmesh::testing
