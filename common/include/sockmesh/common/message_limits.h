// The largest gRPC message sockmesh's processes accept (gRPC's default is 4 MiB).
#pragma once

namespace sockmesh {

// A full push of 10,000 services x 10 endpoints is ~12 MB, and the mesh's limits (16,384 VIPs,
// 64 endpoints each, one workload per endpoint) allow ~1M workloads, ~120 MB. Every receiver of
// the whole state or of a large Apply (meshd's discovery stream, meshcp's API, meshctl) sets this.
inline constexpr int kMaxMessageBytes = 256 * 1024 * 1024;

}  // namespace sockmesh
