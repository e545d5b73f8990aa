// The stream buffer (order across chunks, reads into several chunks, chunks kept while a read
// may still write into them) and the memory bounds of the default limits.
#include "proxy/byte_queue.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "proxy/tunnel_limits.h"

namespace sockmesh::proxy {
namespace {

std::string take_all(ByteQueue &q) {
  std::string out(q.size(), '\0');
  q.take(reinterpret_cast<uint8_t *>(out.data()), out.size());
  return out;
}

void append(ByteQueue &q, const std::string &s) {
  q.append(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

TEST(ByteQueue, KeepsOrderAcrossChunks) {
  ByteQueue q(8);
  append(q, "abcdefghij");
  append(q, "klm");
  EXPECT_EQ(q.size(), 13u);
  uint8_t two[2];
  q.take(two, 2);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(two), 2), "ab");
  EXPECT_EQ(take_all(q), "cdefghijklm");
  EXPECT_TRUE(q.empty());
}

TEST(ByteQueue, FrontGathersChunksUpToALimit) {
  ByteQueue q(4);
  append(q, "0123456789");
  auto bufs = q.front(6);
  ASSERT_EQ(bufs.size(), 2u);
  EXPECT_EQ(std::string(static_cast<const char *>(bufs[0].data()), bufs[0].size()), "0123");
  EXPECT_EQ(std::string(static_cast<const char *>(bufs[1].data()), bufs[1].size()), "45");
  q.consume(5);
  EXPECT_EQ(take_all(q), "56789");
}

TEST(ByteQueue, ASocketReadMayFillSeveralChunksAndCommitLess) {
  ByteQueue q(4);
  append(q, "ab");
  const auto &bufs = q.prepare(7);  // 2 left in the tail (below the minimum room: new chunks)
  size_t room = 0;
  for (const auto &b : bufs) room += b.size();
  EXPECT_EQ(room, 7u);
  // The "socket" delivers 5 bytes.
  const char *incoming = "cdefg";
  size_t left = 5;
  for (const auto &b : bufs) {
    size_t n = std::min(left, b.size());
    std::memcpy(b.data(), incoming + (5 - left), n);
    left -= n;
  }
  q.commit(5);
  EXPECT_EQ(q.size(), 7u);
  EXPECT_EQ(take_all(q), "abcdefg");
}

TEST(ByteQueue, ClearKeepsTheChunkAPendingReadWritesInto) {
  ByteQueue q(16);
  append(q, "old");
  const auto &bufs = q.prepare(8);
  ASSERT_FALSE(bufs.empty());
  auto target = bufs.back();
  EXPECT_EQ(q.clear(), 3u);
  // The read completes after the clear: its memory must still be there (ASan would say).
  std::memcpy(target.data(), "x", 1);
  q.commit(0);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace sockmesh::proxy

namespace sockmesh::proxy {
namespace {

// The numbers docs/tunnel.md gives for the default limits.
TEST(TunnelLimits, DefaultBoundsAreTheDocumentedOnes) {
  TunnelLimits l;
  EXPECT_EQ(l.stream_buffer_bound(), 320u * 1024);
  EXPECT_EQ(l.stream_memory_bound(), 384u * 1024);
  EXPECT_EQ(l.fixed_connection_bytes() / 1024, 563u);
  EXPECT_EQ(l.connection_memory_bound(1) / 1024, 563u + 384);
  EXPECT_EQ(l.connection_memory_bound(500) >> 20, 95u);
  EXPECT_EQ(l.connection_memory_bound(1000) >> 20, 157u);
}

}  // namespace
}  // namespace sockmesh::proxy
