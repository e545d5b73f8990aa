// A FIFO of bytes in fixed-size chunks: what a stream holds between a TCP socket and HTTP/2.
// Chunks never move once allocated, so a socket read may fill the tail chunk while the front is
// being written out; memory is the data plus at most two partly used chunks.
#pragma once

#include <asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace sockmesh::proxy {

class ByteQueue {
 public:
  explicit ByteQueue(size_t chunk_size) : chunk_size_(chunk_size) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Space for one socket read of up to `max` bytes at the tail (the rest of the last chunk and
  // new chunks, as a buffer sequence); commit() what was read. Until then those chunks are kept
  // even if everything before them is consumed.
  const std::vector<asio::mutable_buffer> &prepare(size_t max);
  void commit(size_t n);
  // Appends a copy.
  void append(const uint8_t *data, size_t n);

  // Up to `max_bytes` from the front as a buffer sequence (for a gathering socket write).
  std::vector<asio::const_buffer> front(size_t max_bytes) const;
  // Copies n <= size() bytes from the front to out and drops them.
  void take(uint8_t *out, size_t n);
  // Drops n <= size() bytes from the front.
  void consume(size_t n);
  // Drops everything; returns how many bytes that was.
  size_t clear();

 private:
  struct Chunk {
    std::unique_ptr<uint8_t[]> data;
    size_t begin = 0;  // first unread byte
    size_t end = 0;    // one past the last written byte
  };
  void pop_consumed();

  size_t chunk_size_;
  std::deque<Chunk> chunks_;
  size_t size_ = 0;
  size_t prepared_chunks_ = 0;  // the last chunks a read may be filling
  std::vector<asio::mutable_buffer> prepared_;
};

}  // namespace sockmesh::proxy
