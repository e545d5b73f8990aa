// telemetry_connect: the connect/close workload of the telemetry benchmark (bench/telemetry/), run
// inside a lab pod by telemetry_bench.sh. It reuses bench/connect/connect_loop: a closed loop of
// socket() + connect() + close() (SO_LINGER {1, 0}, so no TIME_WAIT piles up) against one address,
// and a server that accepts and closes.
//
//   telemetry_connect loop --target 10.96.0.10:80 --connects 50000 --warmup 1000
//       prints one JSON line: connect_loop's SampleStats plus "rate_per_s" (connects / wall_s)
//   telemetry_connect serve --port 9000
//       accepts and closes on 0.0.0.0:9000 until killed
#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../connect/connect_loop.h"

namespace {

sockaddr_in parse_target(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("--target must be IPv4:PORT, got " + text);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  unsigned long port = std::stoul(text.substr(colon + 1));
  if (port == 0 || port > 65535) throw std::runtime_error("bad port in " + text);
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &addr.sin_addr) != 1)
    throw std::runtime_error("bad IPv4 address in " + text);
  return addr;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The connect/close workload of the telemetry benchmark (bench/telemetry/README.md)"};
  app.require_subcommand(1, 1);

  std::string target;
  size_t connects = 50000, warmup = 1000;
  auto* loop = app.add_subcommand("loop", "Closed loop of connect()+close() to TARGET; prints JSON");
  loop->add_option("--target", target, "IPv4:PORT")->required();
  loop->add_option("--connects", connects, "Timed connects")->capture_default_str();
  loop->add_option("--warmup", warmup, "Untimed connects before them")->capture_default_str();

  uint16_t port = 9000;
  auto* serve = app.add_subcommand("serve", "Accept and close on 0.0.0.0:PORT until killed");
  serve->add_option("--port", port)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (*serve) return sockmesh::bench::serve_accept_close(port);
    std::vector<sockaddr_in> targets(warmup + connects, parse_target(target));
    auto stats = sockmesh::bench::time_connects(targets, warmup);
    nlohmann::json out = stats;
    out["rate_per_s"] = stats.wall_s > 0 ? double(stats.connects) / stats.wall_s : 0.0;
    std::printf("%s\n", out.dump().c_str());
    return stats.failures == 0 ? 0 : 3;
  } catch (const std::exception& e) {
    std::cerr << "telemetry_connect: " << e.what() << "\n";
    return 1;
  }
}
