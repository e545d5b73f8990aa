#include "proxy/byte_queue.h"

#include <algorithm>
#include <cstring>

namespace sockmesh::proxy {

namespace {
// A tail chunk with less room than this is not worth a socket read of its own.
constexpr size_t kMinReadRoom = 2048;
}  // namespace

ByteQueue::~ByteQueue() {
  if (memory_) memory_->sub(chunks_.size() * chunk_size_);
}

void ByteQueue::push_chunk() {
  chunks_.push_back(Chunk{std::unique_ptr<uint8_t[]>(new uint8_t[chunk_size_])});  // not zeroed
  if (memory_) memory_->add(chunk_size_);
}

void ByteQueue::pop_front_chunk() {
  chunks_.pop_front();
  if (memory_) memory_->sub(chunk_size_);
}

void ByteQueue::pop_back_chunk() {
  chunks_.pop_back();
  if (memory_) memory_->sub(chunk_size_);
}

const std::vector<asio::mutable_buffer> &ByteQueue::prepare(size_t max) {
  prepared_.clear();
  prepared_chunks_ = 0;
  if (!chunks_.empty() && chunk_size_ - chunks_.back().end >= std::min(max, kMinReadRoom)) {
    Chunk &tail = chunks_.back();
    size_t part = std::min(max, chunk_size_ - tail.end);
    prepared_.emplace_back(tail.data.get() + tail.end, part);
    prepared_chunks_ = 1;
    max -= part;
  }
  while (max > 0) {
    push_chunk();
    size_t part = std::min(max, chunk_size_);
    prepared_.emplace_back(chunks_.back().data.get(), part);
    ++prepared_chunks_;
    max -= part;
  }
  return prepared_;
}

void ByteQueue::commit(size_t n) {
  size_t first = chunks_.size() - prepared_chunks_;
  for (size_t i = first; i < chunks_.size() && n > 0; ++i) {
    Chunk &c = chunks_[i];
    size_t part = std::min(n, chunk_size_ - c.end);
    c.end += part;
    size_ += part;
    n -= part;
  }
  prepared_chunks_ = 0;
  prepared_.clear();
  // New chunks the read did not reach.
  while (!chunks_.empty() && chunks_.back().end == 0) pop_back_chunk();
  pop_consumed();
}

void ByteQueue::append(const uint8_t *data, size_t n) {
  while (n > 0) {
    if (chunks_.empty() || chunks_.back().end == chunk_size_) {
      push_chunk();
    }
    Chunk &tail = chunks_.back();
    size_t part = std::min(n, chunk_size_ - tail.end);
    std::memcpy(tail.data.get() + tail.end, data, part);
    tail.end += part;
    size_ += part;
    data += part;
    n -= part;
  }
}

std::vector<asio::const_buffer> ByteQueue::front(size_t max_bytes) const {
  std::vector<asio::const_buffer> out;
  for (const Chunk &c : chunks_) {
    if (max_bytes == 0 || out.size() == 64) break;  // 64: asio's gather limit
    size_t part = std::min(c.end - c.begin, max_bytes);
    if (part == 0) continue;
    out.emplace_back(c.data.get() + c.begin, part);
    max_bytes -= part;
  }
  return out;
}

void ByteQueue::take(uint8_t *out, size_t n) {
  size_t left = n;
  for (auto it = chunks_.begin(); left > 0 && it != chunks_.end(); ++it) {
    size_t part = std::min(left, it->end - it->begin);
    std::memcpy(out, it->data.get() + it->begin, part);
    out += part;
    left -= part;
  }
  consume(n);
}

void ByteQueue::consume(size_t n) {
  size_ -= n;
  for (auto &c : chunks_) {
    if (n == 0) break;
    size_t part = std::min(n, c.end - c.begin);
    c.begin += part;
    n -= part;
  }
  pop_consumed();
}

size_t ByteQueue::clear() {
  size_t n = size_;
  consume(n);
  return n;
}

void ByteQueue::pop_consumed() {
  // A consumed chunk is freed (an idle stream holds no memory), except the tail while a read
  // may be writing into it.
  while (!chunks_.empty() && chunks_.front().begin == chunks_.front().end) {
    if (chunks_.size() <= prepared_chunks_) return;
    pop_front_chunk();
  }
}

}  // namespace sockmesh::proxy
