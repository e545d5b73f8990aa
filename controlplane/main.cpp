// meshcp: the sockmesh reference control plane.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "server.h"
#include "state.h"
#include "store.h"
#include "watch_dir.h"

int main(int argc, char **argv) {
  CLI::App app{
      "meshcp: the sockmesh reference control plane. Its state directory is the store of "
      "resources (docs/controlplane.md); changes arrive through the ControlPlane API on a "
      "root-only unix socket (meshctl apply/delete) or a watched directory of YAML files, are "
      "validated whole, and are pushed to every node agent over the Discovery stream. The "
      "discovery listeners are plaintext for now (mTLS arrives in M5): expose a TCP address only "
      "on a trusted network. SIGTERM or SIGINT stop it."};
  app.set_version_flag("--version", SOCKMESH_VERSION);
  std::string state_dir = "/var/lib/sockmesh/meshcp";
  std::string api_socket = "/run/sockmesh/meshcp/api.sock";
  std::vector<std::string> listen;
  std::string watch_dir, level = "info";
  app.add_option("--state-dir", state_dir, "The store: one file per resource and the version")
      ->capture_default_str();
  app.add_option("--listen", listen,
                 "Discovery address for agents, repeatable: unix:PATH or host:port (plaintext "
                 "until M5; default unix:/run/sockmesh/meshcp/xds.sock)");
  app.add_option("--api-socket", api_socket,
                 "ControlPlane API socket for meshctl (directory 0700, socket 0600: root only)")
      ->capture_default_str();
  app.add_option("--watch-dir", watch_dir,
                 "Apply the *.yaml files of this directory on start and on every change (resources "
                 "missing from it are not deleted)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);
  if (listen.empty()) listen.push_back("unix:/run/sockmesh/meshcp/xds.sock");

  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e level=%l %v");

  // Signals are taken by sigwait below, not by whichever thread happens to run.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  try {
    using namespace sockmesh::controlplane;
    Store store(state_dir);
    State state(store);
    const View view = state.view();
    spdlog::info("event=start state_dir={} version={} resources={}", state_dir, view.version,
                 view.resources->size());
    Servers servers(state, listen, api_socket);
    for (const auto &address : listen) spdlog::info("event=listen address={}", address);
    spdlog::info("event=api_listen socket={}", api_socket);
    std::unique_ptr<DirWatcher> watcher;
    if (!watch_dir.empty()) watcher = std::make_unique<DirWatcher>(state, watch_dir);
    int signal = 0;
    sigwait(&stop_signals, &signal);
    spdlog::info("event=stop signal={}", signal);
    watcher.reset();
    servers.shutdown();
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "meshcp: " << e.what() << "\n";
    return 1;
  }
}
