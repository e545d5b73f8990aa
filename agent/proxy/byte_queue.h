// A FIFO of bytes in fixed-size chunks: what a stream holds between a TCP socket and HTTP/2.
// Chunks never move once allocated, so a socket read may fill the tail chunk while the front is
// being written out; memory is the data plus at most two partly used chunks.
#pragma once

#include <algorithm>
#include <asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "proxy/tunnel_stats.h"

namespace sockmesh::proxy {

// A growable byte buffer whose resize() leaves new bytes uninitialised (they are written right
// after: zeroing them cost as much as the copy) and whose memory is kept until release().
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(size_t size) { resize(size); }
  uint8_t *data() { return data_.get(); }
  const uint8_t *data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint8_t &operator[](size_t i) { return data_[i]; }
  void clear() { size_ = 0; }
  void resize(size_t size) {
    if (size > capacity_) {
      size_t capacity = std::max(size, capacity_ * 2);
      std::unique_ptr<uint8_t[]> grown(new uint8_t[capacity]);
      if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
      data_ = std::move(grown);
      capacity_ = capacity;
    }
    size_ = size;
  }
  void append(const uint8_t *p, size_t n) {
    size_t at = size_;
    resize(size_ + n);
    if (n > 0) std::memcpy(data_.get() + at, p, n);
  }
  void swap(Bytes &other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }
  // Gives the memory back.
  void release() {
    data_.reset();
    size_ = capacity_ = 0;
  }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

class ByteQueue {
 public:
  // `memory` (optional) follows the bytes of the chunks allocated.
  explicit ByteQueue(size_t chunk_size, Gauge *memory = nullptr)
      : chunk_size_(chunk_size), memory_(memory) {}
  ~ByteQueue();
  ByteQueue(const ByteQueue &) = delete;
  ByteQueue &operator=(const ByteQueue &) = delete;

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
  void push_chunk();
  void pop_front_chunk();
  void pop_back_chunk();

  size_t chunk_size_;
  Gauge *memory_;
  std::deque<Chunk> chunks_;
  size_t size_ = 0;
  size_t prepared_chunks_ = 0;  // the last chunks a read may be filling
  std::vector<asio::mutable_buffer> prepared_;
};

}  // namespace sockmesh::proxy
