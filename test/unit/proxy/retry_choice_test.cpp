// The choice of the backend a failed connect is retried on (proxy/retry_choice.h): never one
// already tried, not ejected while another is left, positive weights first, uniform among equals.
#include "proxy/retry_choice.h"

#include <gtest/gtest.h>

#include <map>

namespace sockmesh::proxy {
namespace {

std::vector<UpstreamBackend> backends() {
  return {{"10.78.2.10", 8080, 1, "demo/a"},
          {"10.78.2.11", 8080, 1, "demo/b"},
          {"10.78.2.12", 8080, 1, "demo/c"},
          {"10.78.2.12", 9090, 1, "demo/c"}};
}

std::map<size_t, int> tally(const std::vector<UpstreamBackend> &all, const TriedBackends &tried,
                            const BackendTest &usable, const BackendTest &ejected) {
  std::map<size_t, int> seen;
  for (uint64_t draw = 0; draw < 1200; ++draw) {
    auto next = next_backend(all, tried, usable, ejected, draw);
    if (!next) {
      ++seen[SIZE_MAX];
      continue;
    }
    ++seen[*next];
  }
  return seen;
}

TEST(RetryChoiceTest, NeverATriedBackendAndNoneWhenAllWereTried) {
  const auto all = backends();
  TriedBackends tried{{"10.78.2.10", 8080}, {"10.78.2.12", 9090}};
  const auto seen = tally(all, tried, nullptr, nullptr);
  EXPECT_EQ(seen.count(0), 0u);
  EXPECT_EQ(seen.count(3), 0u);
  EXPECT_GT(seen.at(1), 0);
  EXPECT_GT(seen.at(2), 0);
  // The same address on another port is another backend.
  tried.insert({"10.78.2.11", 8080});
  EXPECT_EQ(next_backend(all, tried, nullptr, nullptr, 7), std::optional<size_t>(2));
  tried.insert({"10.78.2.12", 8080});
  EXPECT_EQ(next_backend(all, tried, nullptr, nullptr, 7), std::nullopt);
  EXPECT_EQ(next_backend({}, {}, nullptr, nullptr, 7), std::nullopt);
}

TEST(RetryChoiceTest, UniformAmongTheCandidates) {
  const auto all = backends();
  const auto seen = tally(all, {{"10.78.2.10", 8080}}, nullptr, nullptr);
  ASSERT_EQ(seen.size(), 3u);
  for (size_t i = 1; i <= 3; ++i) EXPECT_EQ(seen.at(i), 400) << i;  // consecutive draws: exact
}

TEST(RetryChoiceTest, EjectedOnlyWhenNoOtherIsLeft) {
  const auto all = backends();
  auto ejected = [](const UpstreamBackend &b) { return b.ip != "10.78.2.11"; };
  EXPECT_EQ(tally(all, {}, nullptr, ejected), (std::map<size_t, int>{{1, 1200}}));
  // Once the only healthy one was tried, the ejected ones are still better than nothing.
  const auto seen = tally(all, {{"10.78.2.11", 8080}}, nullptr, ejected);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.count(1), 0u);
  auto all_ejected = [](const UpstreamBackend &) { return true; };
  EXPECT_EQ(tally(all, {}, nullptr, all_ejected).size(), 4u);
}

TEST(RetryChoiceTest, PositiveWeightsFirstThenWeightZero) {
  auto all = backends();
  all[1].weight = 0;
  all[2].weight = 0;
  all[3].weight = 5;
  EXPECT_EQ(tally(all, {{"10.78.2.10", 8080}}, nullptr, nullptr),
            (std::map<size_t, int>{{3, 1200}}));
  // Weight 0 rather than nothing.
  const auto seen = tally(all, {{"10.78.2.10", 8080}, {"10.78.2.12", 9090}}, nullptr, nullptr);
  EXPECT_EQ(seen, (std::map<size_t, int>{{1, 600}, {2, 600}}));
  // Not ejected with weight 0 comes before ejected with a positive weight.
  auto ejected = [](const UpstreamBackend &b) { return b.weight > 0; };
  EXPECT_EQ(tally(all, {}, nullptr, ejected), (std::map<size_t, int>{{1, 600}, {2, 600}}));
}

TEST(RetryChoiceTest, OnlyUsableBackends) {
  const auto all = backends();
  // E.g. a backend on this node, or on a node without a known tunnel address.
  auto usable = [](const UpstreamBackend &b) { return b.workload != "demo/c"; };
  EXPECT_EQ(tally(all, {{"10.78.2.10", 8080}}, usable, nullptr),
            (std::map<size_t, int>{{1, 1200}}));
  EXPECT_EQ(next_backend(all, {{"10.78.2.10", 8080}, {"10.78.2.11", 8080}}, usable, nullptr, 1),
            std::nullopt);
}

}  // namespace
}  // namespace sockmesh::proxy
