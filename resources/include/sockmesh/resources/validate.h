// Semantic and cross-resource checks of a snapshot, whatever its origin (YAML, control plane).
#pragma once

#include <string>
#include <vector>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources {

// What a snapshot stands for. A complete one is everything a consumer will hold (a config file, the
// control plane's store). A partial one is a change to be merged into a store the checker cannot
// see
// (`meshctl apply -f`): references to resources it does not contain are left for the store's owner
// to check, every other rule holds.
enum class Scope { kComplete, kPartial };

// Every rule of docs/config.md that a parsed snapshot can break, one error line each
// (`<kind> "<namespace>/<name>": <field path>: <what is wrong>`), in snapshot order.
// Empty means the snapshot may be applied.
std::vector<std::string> validate(const sockmesh::v1::Snapshot &snapshot,
                                  Scope scope = Scope::kComplete);

// A VIP port as validation compares them: the parsed address (so "fd00::a" and "fd00:0::a" are
// one), the port and the effective protocol; "" for a VIP that is not valid. For indexes of the
// VIPs in use, to check a change against services it does not touch.
std::string vip_identity(const sockmesh::v1::VirtualAddress& vip);

// Text of a VIP port for messages: "10.96.0.10:80/TCP", "[fd00:96::a]:80/UDP".
std::string vip_text(const sockmesh::v1::VirtualAddress& vip);

}  // namespace sockmesh::resources
