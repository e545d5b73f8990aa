// Resource snapshot -> desired kernel state: which backends each VIP port balances to, with what
// weight. The snapshot must have passed sockmesh::resources::validate().
#pragma once

#include "reconcile/desired_state.h"

namespace sockmesh::v1 {
class Service;
class Snapshot;
class VirtualAddress;
}  // namespace sockmesh::v1

namespace sockmesh::reconcile {

// Scale of subset-split weights: a service with subsets gets kernel weights that sum to about
// 2^20, enough resolution for splits down to one part in a million.
inline constexpr uint64_t kSplitScale = 1u << 20;

DesiredState translate(const sockmesh::v1::Snapshot &snapshot);

// The kernel's resilience settings of a validated service, for its TCP VIPs.
DesiredResilience resilience_of(const sockmesh::v1::Service &service);

// The kernel key of a validated VIP.
ServiceKey key_of(const sockmesh::v1::VirtualAddress &vip);

}  // namespace sockmesh::reconcile
