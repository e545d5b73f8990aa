// Test helpers for the Prometheus endpoints of meshd and meshcp: a plain HTTP/1.0 GET,
// `promtool check metrics`, docs/metrics.md, and the checks both endpoints' tests make.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

namespace sockmesh::testing {

struct HttpResponse {
  int status = 0;
  std::string headers;
  std::string body;
};

// GET http://127.0.0.1:<port><path>, HTTP/1.0 (the server closes when done).
inline HttpResponse http_get(int port, const std::string &path = "/metrics") {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0) {
    close(fd);
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + " failed");
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size())) {
    close(fd);
    throw std::runtime_error("send failed");
  }
  std::string raw;
  char buf[16384];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, size_t(n));
  close(fd);
  HttpResponse r;
  const auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) throw std::runtime_error("no HTTP response: " + raw);
  r.headers = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  if (r.headers.rfind("HTTP/1.", 0) != 0) throw std::runtime_error("not HTTP: " + r.headers);
  r.status = std::stoi(r.headers.substr(9, 3));
  return r;
}

struct ToolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// `promtool check metrics` on `text`. PROMTOOL_BIN is set by CMake ("" when not found).
inline ToolResult promtool_check(const std::string &text) {
  const std::string promtool = PROMTOOL_BIN;
  if (promtool.empty())
    throw std::runtime_error(
        "promtool not found (Debian package prometheus; scripts/install-deps.sh)");
  const auto file = std::filesystem::temp_directory_path() /
                    ("sockmesh-metrics-" + std::to_string(getpid()) + ".txt");
  std::ofstream(file) << text;
  const std::string cmd = promtool + " check metrics < " + file.string() + " 2>&1";
  ToolResult r;
  if (FILE *p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) r.output.append(buf, n);
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::filesystem::remove(file);
  return r;
}

// The sample lines of an exposition (no comments), as a set.
inline std::set<std::string> sample_lines(const std::string &text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') out.insert(line);
  return out;
}

// Family names from "# TYPE name type" lines.
inline std::set<std::string> family_names(const std::string &text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("# TYPE ", 0) == 0) out.insert(line.substr(7, line.find(' ', 7) - 7));
  return out;
}

// docs/metrics.md's text (DOCS_METRICS_MD set by CMake).
inline std::string metrics_doc() {
  std::ifstream in(DOCS_METRICS_MD);
  if (!in) throw std::runtime_error(std::string("cannot read ") + DOCS_METRICS_MD);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// True when docs/metrics.md names `metric` in backticks.
inline bool documented(const std::string &doc, const std::string &metric) {
  return doc.find("`" + metric + "`") != std::string::npos;
}

// promtool checks `text` and has nothing to say.
inline void expect_promtool_clean(const std::string &text) {
  const auto check = promtool_check(text);
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "") << "promtool complained:\n" << check.output;
}

// Every family `text` serves is named in docs/metrics.md.
inline void expect_families_documented(const std::string &text) {
  const std::string doc = metrics_doc();
  for (const auto &family : family_names(text))
    EXPECT_TRUE(documented(doc, family)) << family << " is not in docs/metrics.md";
}

// `text` has the process_* samples (values vary: only their presence is checked).
inline void expect_process_metrics(const std::string &text) {
  for (const char *process : {"process_resident_memory_bytes ", "process_open_fds ",
                              "process_cpu_seconds_total ", "process_start_time_seconds "})
    EXPECT_NE(text.find(std::string("\n") + process), std::string::npos) << process;
}

// What every full scrape of meshd or meshcp must be: with process_*, clean for promtool, and
// documented family by family.
inline void expect_complete_exposition(const std::string &text) {
  expect_process_metrics(text);
  expect_promtool_clean(text);
  expect_families_documented(text);
}

// `serve(address)` starts a metrics server on an address whose port is in use (a loopback socket
// listens on it meanwhile): it must throw the one-line error that says why.
template <typename Serve>
void expect_port_in_use_error(Serve serve) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr *>(&sa), &len) != 0) {
    close(fd);
    FAIL() << "cannot listen on a loopback port";
  }
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  try {
    serve(address);
    ADD_FAILURE() << "bound a port in use";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "cannot serve metrics on " + address +
                                         ": Address already in use (choose another "
                                         "--metrics-address, or \"off\")");
  }
  close(fd);
}

}  // namespace sockmesh::testing
