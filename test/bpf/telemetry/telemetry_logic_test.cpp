// The traffic telemetry decisions the kernel programs make (bpf/include/sockmesh/telemetry.h),
// run in user space: BPF_PROG_TEST_RUN cannot run sock_addr or sock_ops programs.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstdint>

#include "sockmesh/telemetry.h"

namespace {

// The TCP states are the kernel's (sock_ops reports BPF_TCP_*).
static_assert(SM_TCP_ESTABLISHED == BPF_TCP_ESTABLISHED);
static_assert(SM_TCP_SYN_SENT == BPF_TCP_SYN_SENT);
static_assert(SM_TCP_FIN_WAIT1 == BPF_TCP_FIN_WAIT1);
static_assert(SM_TCP_CLOSE == BPF_TCP_CLOSE);
static_assert(SM_TCP_LAST_ACK == BPF_TCP_LAST_ACK);
static_assert(SM_TCP_CLOSING == BPF_TCP_CLOSING);

constexpr uint64_t kSecond = 1000000000ull;
static_assert(SM_TELEMETRY_FLUSH_NS == kSecond);

sm_telemetry_config config(uint32_t flags, uint32_t sample_below) {
  sm_telemetry_config c{};
  c.flags = flags;
  c.sample_below = sample_below;
  return c;
}

// ---- sm_tm_sampled ----

TEST(TelemetrySampled, NoConfigLogsNothing) {
  EXPECT_EQ(sm_tm_sampled(nullptr, 0), 0);
  EXPECT_EQ(sm_tm_sampled(nullptr, 0xffffffffu), 0);
}

TEST(TelemetrySampled, EventsOffLogsNothingWhateverTheThreshold) {
  for (uint32_t flags : {0u, uint32_t(SM_TELEMETRY_COUNTERS)}) {
    const auto all = config(flags, 0xffffffffu);
    EXPECT_EQ(sm_tm_sampled(&all, 0), 0) << flags;
    EXPECT_EQ(sm_tm_sampled(&all, 0xffffffffu), 0) << flags;
    const auto half = config(flags, 0x80000000u);
    EXPECT_EQ(sm_tm_sampled(&half, 0), 0) << flags;
  }
}

TEST(TelemetrySampled, AllLogsEveryDrawIncludingTheLargest) {
  const auto all = config(SM_TELEMETRY_EVENTS | SM_TELEMETRY_COUNTERS, 0xffffffffu);
  for (uint32_t draw : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu})
    EXPECT_EQ(sm_tm_sampled(&all, draw), 1) << draw;
  // The events flag alone is enough for the decision.
  const auto events_only = config(SM_TELEMETRY_EVENTS, 0xffffffffu);
  EXPECT_EQ(sm_tm_sampled(&events_only, 0xffffffffu), 1);
}

TEST(TelemetrySampled, ZeroThresholdLogsNothing) {
  const auto none = config(SM_TELEMETRY_EVENTS | SM_TELEMETRY_COUNTERS, 0);
  EXPECT_EQ(sm_tm_sampled(&none, 0), 0);
  EXPECT_EQ(sm_tm_sampled(&none, 1), 0);
  EXPECT_EQ(sm_tm_sampled(&none, 0xffffffffu), 0);
}

TEST(TelemetrySampled, DrawBelowThresholdIsLoggedAtThresholdIsNot) {
  const auto half = config(SM_TELEMETRY_EVENTS | SM_TELEMETRY_COUNTERS, 0x80000000u);
  EXPECT_EQ(sm_tm_sampled(&half, 0), 1);
  EXPECT_EQ(sm_tm_sampled(&half, 0x7fffffffu), 1);
  EXPECT_EQ(sm_tm_sampled(&half, 0x80000000u), 0);
  EXPECT_EQ(sm_tm_sampled(&half, 0x80000001u), 0);
  EXPECT_EQ(sm_tm_sampled(&half, 0xffffffffu), 0);

  const auto one = config(SM_TELEMETRY_EVENTS, 1);
  EXPECT_EQ(sm_tm_sampled(&one, 0), 1);
  EXPECT_EQ(sm_tm_sampled(&one, 1), 0);

  // Just under "all": only the two largest draws are left out.
  const auto almost = config(SM_TELEMETRY_EVENTS, 0xfffffffeu);
  EXPECT_EQ(sm_tm_sampled(&almost, 0xfffffffdu), 1);
  EXPECT_EQ(sm_tm_sampled(&almost, 0xfffffffeu), 0);
  EXPECT_EQ(sm_tm_sampled(&almost, 0xffffffffu), 0);
}

// ---- sm_tm_close_reason ----

TEST(TelemetryCloseReason, NeverEstablishedIsConnectFailed) {
  for (uint32_t old_state : {uint32_t(SM_TCP_SYN_SENT), uint32_t(SM_TCP_ESTABLISHED),
                             uint32_t(SM_TCP_FIN_WAIT1), uint32_t(SM_TCP_CLOSE)})
    EXPECT_EQ(sm_tm_close_reason(old_state, 0), SM_CLOSE_CONNECT_FAILED) << old_state;
}

TEST(TelemetryCloseReason, EstablishedStraightToCloseIsReset) {
  EXPECT_EQ(sm_tm_close_reason(SM_TCP_ESTABLISHED, 1), SM_CLOSE_RESET);
}

TEST(TelemetryCloseReason, FromAClosingStateIsFin) {
  for (uint32_t old_state :
       {uint32_t(BPF_TCP_FIN_WAIT1), uint32_t(BPF_TCP_FIN_WAIT2), uint32_t(BPF_TCP_TIME_WAIT),
        uint32_t(BPF_TCP_CLOSE_WAIT), uint32_t(BPF_TCP_LAST_ACK), uint32_t(BPF_TCP_CLOSING)})
    EXPECT_EQ(sm_tm_close_reason(old_state, 1), SM_CLOSE_FIN) << old_state;
}

// ---- sm_tm_fin_out_state ----

TEST(TelemetryFinOut, OnlyStatesEnteredBySendingFin) {
  EXPECT_EQ(sm_tm_fin_out_state(BPF_TCP_FIN_WAIT1), 1);
  EXPECT_EQ(sm_tm_fin_out_state(BPF_TCP_LAST_ACK), 1);
  EXPECT_EQ(sm_tm_fin_out_state(BPF_TCP_CLOSING), 1);
  for (uint32_t state :
       {uint32_t(BPF_TCP_ESTABLISHED), uint32_t(BPF_TCP_SYN_SENT), uint32_t(BPF_TCP_SYN_RECV),
        uint32_t(BPF_TCP_FIN_WAIT2), uint32_t(BPF_TCP_TIME_WAIT), uint32_t(BPF_TCP_CLOSE),
        uint32_t(BPF_TCP_CLOSE_WAIT), uint32_t(BPF_TCP_LISTEN), 0u})
    EXPECT_EQ(sm_tm_fin_out_state(state), 0) << state;
}

// ---- sm_tm_flush_due ----

TEST(TelemetryFlushDue, ExactlyOneSecondAfterTheLastFlush) {
  sm_conn c{};
  c.flushed_ns = 5 * kSecond;
  EXPECT_EQ(sm_tm_flush_due(&c, 5 * kSecond), 0);
  EXPECT_EQ(sm_tm_flush_due(&c, 5 * kSecond + 1), 0);
  EXPECT_EQ(sm_tm_flush_due(&c, 6 * kSecond - 1), 0);
  EXPECT_EQ(sm_tm_flush_due(&c, 6 * kSecond), 1);
  EXPECT_EQ(sm_tm_flush_due(&c, 6 * kSecond + 1), 1);
  EXPECT_EQ(sm_tm_flush_due(&c, 100 * kSecond), 1);
}

// ---- sm_tm_flush ----

TEST(TelemetryFlush, FirstFlushAddsTheTotals) {
  sm_conn c{};
  sm_traffic_value v{};
  sm_tm_flush(&c, &v, 100, 250, 3);
  EXPECT_EQ(v.bytes_sent, 100u);
  EXPECT_EQ(v.bytes_received, 250u);
  EXPECT_EQ(v.retransmits, 3u);
  EXPECT_EQ(v.fastpath_bytes_sent, 0u);
  EXPECT_EQ(v.fastpath_bytes_received, 0u);
  EXPECT_EQ(c.sent_counted, 100u);
  EXPECT_EQ(c.received_counted, 250u);
  EXPECT_EQ(c.retrans_counted, 3u);
}

TEST(TelemetryFlush, LaterFlushesAddOnlyTheDeltas) {
  sm_conn c{};
  sm_traffic_value v{};
  sm_tm_flush(&c, &v, 100, 250, 3);
  sm_tm_flush(&c, &v, 160, 250, 5);
  EXPECT_EQ(v.bytes_sent, 160u);
  EXPECT_EQ(v.bytes_received, 250u);
  EXPECT_EQ(v.retransmits, 5u);
  sm_tm_flush(&c, &v, 160, 1250, 5);
  EXPECT_EQ(v.bytes_sent, 160u);
  EXPECT_EQ(v.bytes_received, 1250u);
  EXPECT_EQ(v.retransmits, 5u);
  EXPECT_EQ(c.sent_counted, 160u);
  EXPECT_EQ(c.received_counted, 1250u);
  EXPECT_EQ(c.retrans_counted, 5u);
  // The same totals again add nothing.
  sm_tm_flush(&c, &v, 160, 1250, 5);
  EXPECT_EQ(v.bytes_sent, 160u);
  EXPECT_EQ(v.bytes_received, 1250u);
  EXPECT_EQ(v.retransmits, 5u);
}

TEST(TelemetryFlush, AddsToWhatOtherConnectionsCounted) {
  sm_traffic_value v{};
  v.bytes_sent = 1000;
  v.bytes_received = 2000;
  v.retransmits = 7;
  v.fastpath_bytes_sent = 10;
  v.opened = 4;
  sm_conn c{};
  sm_tm_flush(&c, &v, 1, 2, 1);
  EXPECT_EQ(v.bytes_sent, 1001u);
  EXPECT_EQ(v.bytes_received, 2002u);
  EXPECT_EQ(v.retransmits, 8u);
  EXPECT_EQ(v.fastpath_bytes_sent, 10u);
  EXPECT_EQ(v.opened, 4u);  // connection counts are not the flush's
}

TEST(TelemetryFlush, TotalsBelowWhatWasCountedAddNothingAndNeverGoBack) {
  sm_conn c{};
  c.sent_counted = 500;
  c.received_counted = 700;
  c.retrans_counted = 9;
  sm_traffic_value v{};
  sm_tm_flush(&c, &v, 499, 0, 8);
  EXPECT_EQ(v.bytes_sent, 0u);
  EXPECT_EQ(v.bytes_received, 0u);
  EXPECT_EQ(v.retransmits, 0u);
  EXPECT_EQ(c.sent_counted, 500u);
  EXPECT_EQ(c.received_counted, 700u);
  EXPECT_EQ(c.retrans_counted, 9u);
  // Back above: only what is new since the highest count.
  sm_tm_flush(&c, &v, 510, 701, 10);
  EXPECT_EQ(v.bytes_sent, 10u);
  EXPECT_EQ(v.bytes_received, 1u);
  EXPECT_EQ(v.retransmits, 1u);
}

TEST(TelemetryFlush, FastPathBytesCountInBothTheTotalsAndTheFastPathFields) {
  sm_conn c{};
  sm_traffic_value v{};
  c.fastpath_sent = 300;
  c.fastpath_received = 40;
  sm_tm_flush(&c, &v, 100, 200, 0);
  EXPECT_EQ(v.bytes_sent, 400u);
  EXPECT_EQ(v.bytes_received, 240u);
  EXPECT_EQ(v.fastpath_bytes_sent, 300u);
  EXPECT_EQ(v.fastpath_bytes_received, 40u);
  EXPECT_EQ(c.fastpath_sent_counted, 300u);
  EXPECT_EQ(c.fastpath_received_counted, 40u);
  EXPECT_EQ(c.sent_counted, 100u);
  EXPECT_EQ(c.received_counted, 200u);

  // Only the fast path moved: its delta goes to both.
  c.fastpath_sent = 350;
  sm_tm_flush(&c, &v, 100, 200, 0);
  EXPECT_EQ(v.bytes_sent, 450u);
  EXPECT_EQ(v.bytes_received, 240u);
  EXPECT_EQ(v.fastpath_bytes_sent, 350u);
  EXPECT_EQ(v.fastpath_bytes_received, 40u);

  // Nothing new: nothing added.
  sm_tm_flush(&c, &v, 100, 200, 0);
  EXPECT_EQ(v.bytes_sent, 450u);
  EXPECT_EQ(v.fastpath_bytes_sent, 350u);
}

TEST(TelemetryFlush, FastPathCountedAboveCarriedAddsNothing) {
  sm_conn c{};
  c.fastpath_sent = 10;
  c.fastpath_sent_counted = 20;
  c.fastpath_received = 5;
  c.fastpath_received_counted = 6;
  sm_traffic_value v{};
  sm_tm_flush(&c, &v, 0, 0, 0);
  EXPECT_EQ(v.bytes_sent, 0u);
  EXPECT_EQ(v.bytes_received, 0u);
  EXPECT_EQ(v.fastpath_bytes_sent, 0u);
  EXPECT_EQ(v.fastpath_bytes_received, 0u);
  EXPECT_EQ(c.fastpath_sent_counted, 20u);
  EXPECT_EQ(c.fastpath_received_counted, 6u);
}

TEST(TelemetryFlush, RetransmitDeltasUpToTheLargestCount) {
  sm_conn c{};
  sm_traffic_value v{};
  sm_tm_flush(&c, &v, 0, 0, 0);
  EXPECT_EQ(v.retransmits, 0u);
  sm_tm_flush(&c, &v, 0, 0, 2);
  sm_tm_flush(&c, &v, 0, 0, 2);
  sm_tm_flush(&c, &v, 0, 0, 0xffffffffu);
  EXPECT_EQ(v.retransmits, 0xffffffffull);
  EXPECT_EQ(c.retrans_counted, 0xffffffffu);
}

TEST(TelemetryFlush, LargeTotalsDoNotWrap) {
  sm_conn c{};
  sm_traffic_value v{};
  const uint64_t big = 1ull << 40;
  sm_tm_flush(&c, &v, big, big + 1, 0);
  sm_tm_flush(&c, &v, big + 5, big + 1, 0);
  EXPECT_EQ(v.bytes_sent, big + 5);
  EXPECT_EQ(v.bytes_received, big + 1);
}

// ---- sm_tm_payload_sent, sm_tm_payload_received ----

TEST(TelemetryPayload, SentSubtractsTheSynOnceEstablished) {
  EXPECT_EQ(sm_tm_payload_sent(0, 0, 0), 0u);
  EXPECT_EQ(sm_tm_payload_sent(1, 1, 0), 0u);  // the SYN acknowledged, nothing else
  EXPECT_EQ(sm_tm_payload_sent(101, 1, 0), 100u);
  // Not yet established: nothing to subtract.
  EXPECT_EQ(sm_tm_payload_sent(5, 0, 0), 5u);
}

TEST(TelemetryPayload, SentSubtractsTheFinOnceAcknowledged) {
  EXPECT_EQ(sm_tm_payload_sent(102, 1, 1), 100u);
  EXPECT_EQ(sm_tm_payload_sent(2, 1, 1), 0u);  // SYN and FIN, no payload
  // The count does not jump back when the FIN's acknowledgement arrives.
  EXPECT_EQ(sm_tm_payload_sent(101, 1, 0), sm_tm_payload_sent(102, 1, 1));
}

TEST(TelemetryPayload, SentNeverUnderflows) {
  EXPECT_EQ(sm_tm_payload_sent(0, 1, 0), 0u);
  EXPECT_EQ(sm_tm_payload_sent(0, 1, 1), 0u);
  EXPECT_EQ(sm_tm_payload_sent(1, 1, 1), 0u);
  EXPECT_EQ(sm_tm_payload_sent(0, 0, 1), 0u);
  EXPECT_EQ(sm_tm_payload_sent(1, 0, 1), 0u);
}

TEST(TelemetryPayload, SentLargeCounts) {
  EXPECT_EQ(sm_tm_payload_sent(0xffffffffffffffffull, 1, 1), 0xfffffffffffffffdull);
  EXPECT_EQ(sm_tm_payload_sent(1ull << 40, 0, 0), 1ull << 40);
}

TEST(TelemetryPayload, ReceivedSubtractsThePeersFin) {
  EXPECT_EQ(sm_tm_payload_received(0, 0), 0u);
  EXPECT_EQ(sm_tm_payload_received(100, 0), 100u);
  EXPECT_EQ(sm_tm_payload_received(101, 1), 100u);
  EXPECT_EQ(sm_tm_payload_received(1, 1), 0u);  // only the FIN
}

TEST(TelemetryPayload, ReceivedNeverUnderflows) {
  EXPECT_EQ(sm_tm_payload_received(0, 1), 0u);
}

// ---- a connection's life, as sock_ops drives the decisions ----

TEST(TelemetryConnection, BytesFlushedWhileLiveAndAtCloseAddUpOnce) {
  sm_conn c{};
  sm_traffic_value v{};
  c.flags = SM_CONN_ESTABLISHED;
  c.flushed_ns = 10 * kSecond;  // established
  // Half a second in: not due.
  EXPECT_EQ(sm_tm_flush_due(&c, 10 * kSecond + kSecond / 2), 0);
  // One second in: 1 (SYN) + 1000 acked, 500 received.
  ASSERT_EQ(sm_tm_flush_due(&c, 11 * kSecond), 1);
  c.flushed_ns = 11 * kSecond;
  sm_tm_flush(&c, &v, sm_tm_payload_sent(1001, 1, 0), sm_tm_payload_received(500, 0), 1);
  EXPECT_EQ(v.bytes_sent, 1000u);
  EXPECT_EQ(v.bytes_received, 500u);
  // Closed in order: both FINs count in TCP's sequence space, not in the payload.
  sm_tm_flush(&c, &v, sm_tm_payload_sent(2002, 1, 1), sm_tm_payload_received(801, 1), 1);
  EXPECT_EQ(v.bytes_sent, 2000u);
  EXPECT_EQ(v.bytes_received, 800u);
  EXPECT_EQ(v.retransmits, 1u);
  EXPECT_EQ(sm_tm_close_reason(BPF_TCP_LAST_ACK, 1), SM_CLOSE_FIN);
}

}  // namespace
