// meshcp: the sockmesh reference control plane.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "bootstrap_tokens.h"
#include "identity_authority.h"
#include "metrics_exporter.h"
#include "server.h"
#include "sockmesh/common/atomic_file.h"
#include "sockmesh/common/token_file.h"
#include "state.h"
#include "store.h"
#include "watch_dir.h"

int main(int argc, char **argv) {
  CLI::App app{
      "meshcp: the sockmesh reference control plane. Its state directory is the store of "
      "resources (docs/controlplane.md); changes arrive through the ControlPlane API on a "
      "root-only unix socket (meshctl apply/delete) or a watched directory of YAML files, are "
      "validated whole, and are pushed to every node agent over the Discovery stream. meshcp is "
      "also the mesh's CA (docs/security.md): nodes join with a one-time token (meshctl node add) "
      "or the cluster's reusable bootstrap token (--bootstrap-token-file) and get SVIDs for their "
      "own workloads; agents reach it over TLS only. SIGTERM or SIGINT stop it."};
  app.set_version_flag("--version", SOCKMESH_VERSION);
  std::string state_dir = "/var/lib/sockmesh/meshcp";
  std::string api_socket = "/run/sockmesh/meshcp/api.sock";
  std::vector<std::string> listen;
  std::string watch_dir, level = "info";
  app.add_option("--state-dir", state_dir, "The store: one file per resource and the version")
      ->capture_default_str();
  app.add_option("--listen", listen,
                 "Address for agents (Discovery and Identity, TLS), repeatable: unix:PATH or "
                 "host:port (default unix:/run/sockmesh/meshcp/xds.sock)");
  std::string trust_domain = "cluster.local", ca_cert, ca_key;
  app.add_option("--trust-domain", trust_domain,
                 "SPIFFE trust domain of the mesh (a root made at first start is for it)")
      ->capture_default_str();
  app.add_option("--ca-cert", ca_cert,
                 "Use this CA certificate (PEM) instead of the root kept in <state-dir>/ca; with "
                 "--ca-key. A CA without a URI SAN (e.g. Helm's genCA) is for --trust-domain");
  app.add_option("--ca-key", ca_key,
                 "The private key (PEM: PKCS#8 or SEC1 EC, P-256) of --ca-cert");
  std::string bootstrap_token_file;
  app.add_option("--bootstrap-token-file", bootstrap_token_file,
                 "A file holding the cluster's reusable bootstrap token (one line, at least 32 "
                 "characters; e.g. a mounted Kubernetes Secret): a node presenting it joins under "
                 "any node name, any number of times (for a DaemonSet; meshd --join-token-file). "
                 "One-time tokens of meshctl node add keep working. Read once: restart meshcp to "
                 "rotate it");
  int64_t node_cert_ttl = 24 * 3600, svid_ttl = 3600;
  app.add_option("--node-cert-ttl", node_cert_ttl, "Lifetime of node certificates, seconds")
      ->check(CLI::Range(int64_t{60}, int64_t{365} * 24 * 3600))
      ->capture_default_str();
  app.add_option("--svid-ttl", svid_ttl,
                 "Lifetime of workload SVIDs, seconds (agents renew them at half their lifetime)")
      ->check(CLI::Range(int64_t{10}, int64_t{30} * 24 * 3600))
      ->capture_default_str();
  app.add_option("--api-socket", api_socket,
                 "ControlPlane API socket for meshctl (directory 0700, socket 0600: root only)")
      ->capture_default_str();
  app.add_option("--watch-dir", watch_dir,
                 "Apply the *.yaml files of this directory on start and on every change (resources "
                 "missing from it are not deleted)");
  std::string metrics_address = "0.0.0.0:15014";
  app.add_option("--metrics-address", metrics_address,
                 "Serve Prometheus metrics (sockmesh_cp_*, docs/metrics.md) at "
                 "http://ADDR:PORT/metrics; \"off\" disables it")
      ->capture_default_str();
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
    if (ca_cert.empty() != ca_key.empty())
      throw std::runtime_error("give both --ca-cert and --ca-key, or neither");
    const std::string cluster_token =
        bootstrap_token_file.empty()
            ? ""
            : sockmesh::read_token_file(bootstrap_token_file, "--bootstrap-token-file");
    Store store(state_dir);
    State state(store);
    const auto clock = sockmesh::pki::system_clock();
    auto ca = ca_cert.empty() ? sockmesh::pki::CertificateAuthority::load_or_create(
                                    state_dir + "/ca", trust_domain, clock)
                              : sockmesh::pki::CertificateAuthority::from_pem(
                                    sockmesh::read_whole_file(ca_cert),
                                    sockmesh::read_whole_file(ca_key), trust_domain);
    if (ca.trust_domain() != trust_domain)
      throw std::runtime_error("the CA is for trust domain \"" + ca.trust_domain() + "\", not \"" +
                               trust_domain + "\" (--trust-domain)");
    BootstrapTokens tokens(state_dir + "/bootstrap-tokens", clock, cluster_token);
    if (tokens.has_cluster_token())
      spdlog::info("event=cluster_bootstrap_token file={}", bootstrap_token_file);
    IdentityAuthority authority(
        std::move(ca), tokens, state,
        {std::chrono::seconds(node_cert_ttl), std::chrono::seconds(svid_ttl)}, clock);
    spdlog::info("event=ca trust_domain={} ca_cert_hash={}", trust_domain,
                 authority.ca_cert_hash());
    const View view = state.view();
    spdlog::info("event=start state_dir={} version={} resources={}", state_dir, view.version,
                 view.resources->size());
    // Before the servers: a port in use stops meshcp before agents can reach it.
    std::unique_ptr<MetricsServer> metrics;
    if (metrics_address != "off") {
      metrics =
          std::make_unique<MetricsServer>(metrics_address, state, authority, SOCKMESH_VERSION);
      spdlog::info("event=metrics_listen address={} port={}", metrics_address, metrics->port());
    }
    Servers servers(state, authority, listen, api_socket);
    for (const auto &address : listen) spdlog::info("event=listen address={}", address);
    spdlog::info("event=api_listen socket={}", api_socket);
    std::unique_ptr<DirWatcher> watcher;
    if (!watch_dir.empty()) watcher = std::make_unique<DirWatcher>(state, watch_dir);
    int signal = 0;
    sigwait(&stop_signals, &signal);
    spdlog::info("event=stop signal={}", signal);
    watcher.reset();
    metrics.reset();
    servers.shutdown();
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "meshcp: " << e.what() << "\n";
    return 1;
  }
}
