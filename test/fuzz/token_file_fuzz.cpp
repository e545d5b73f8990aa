// Token files (sockmesh/common/token_file.h): the fuzzed bytes are the content of meshd's
// --join-token-file or meshcp's --bootstrap-token-file (a mounted Secret), read by
// read_token_file from a memory file.
//
// Beyond "no crash": a token that is accepted is at least kMinTokenLength characters with no space
// or control character, and is the file's content without its trailing whitespace; a refusal is
// one line starting with the flag and the path.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "sockmesh/common/token_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const int fd = memfd_create("token", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    FUZZ_CHECK(n > 0, "write");
    done += size_t(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  try {
    const std::string token = sockmesh::read_token_file(path, "--join-token-file");
    FUZZ_CHECK(token.size() >= sockmesh::kMinTokenLength, token);
    for (const char c : token) FUZZ_CHECK(static_cast<unsigned char>(c) > ' ' && c != 0x7f, token);
    FUZZ_CHECK(text.starts_with(token), token);
    FUZZ_CHECK(text.substr(token.size()).find_first_not_of("\n\r \t\v\f") == std::string_view::npos,
               token);
  } catch (const std::runtime_error &e) {
    const std::string what = e.what();
    FUZZ_CHECK(what.starts_with("--join-token-file " + path + ": "), what);
    FUZZ_CHECK(what.find('\n') == std::string::npos, what);
  }
  ::close(fd);
  return 0;
}
