// A secret token kept in a file instead of on the command line (where `ps` shows it): a
// Kubernetes Secret mounted as a file, or a file only root reads. Used by meshcp's
// --bootstrap-token-file (the cluster's reusable bootstrap token) and meshd's --join-token-file.
// Header-only.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sockmesh {

// Fewer characters than this are refused: 32 random characters of any usual alphabet hold more
// than 128 bits.
inline constexpr size_t kMinTokenLength = 32;

// The token in `path`: one line; trailing whitespace (the newline) is trimmed. Throws
// std::runtime_error with one line starting "<flag> <path>: " when the file cannot be read, is
// empty, holds more than one line, is shorter than kMinTokenLength, or holds a space or control
// character.
inline std::string read_token_file(const std::string &path, const std::string &flag) {
  const std::string where = flag + " " + path + ": ";
  constexpr size_t kMaxBytes = 64 * 1024;  // a token is short; a big file is the wrong file
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(where + "cannot read: " + std::strerror(errno));
  std::string text;
  char buffer[4096];
  while (text.size() <= kMaxBytes) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(where + "cannot read: " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buffer, size_t(n));
  }
  ::close(fd);
  if (text.size() > kMaxBytes)
    throw std::runtime_error(where + "larger than 64 KiB (it must hold one token line)");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t' || text.back() == '\v' || text.back() == '\f'))
    text.pop_back();
  if (text.empty()) throw std::runtime_error(where + "empty (it must hold one token line)");
  if (text.find('\n') != std::string::npos)
    throw std::runtime_error(where + "more than one line (it must hold one token line)");
  for (const char c : text)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      throw std::runtime_error(where + "the token holds a space or a control character");
  if (text.size() < kMinTokenLength)
    throw std::runtime_error(where + "the token has " + std::to_string(text.size()) +
                             " characters, at least " + std::to_string(kMinTokenLength) +
                             " are needed");
  return text;
}

}  // namespace sockmesh
