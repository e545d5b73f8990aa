// The pure half of `meshctl bpf dump`: the bytes of one entry of a data-path map
// (bpf/include/sockmesh/*.h) into readable text, with the agent's names (names.h). No syscalls:
// map_inspector.h reads the maps and hands the bytes here, and the unit tests
// (test/bpf/telemetry/map_decode_test.cpp) hand canned bytes.
//
// A map this file does not know, or an entry whose sizes do not match the layout it expects (a
// newer or older object than the agent's), is shown as hex: decoding never guesses.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "telemetry/names.h"

namespace sockmesh::telemetry {

// One entry as read from the kernel.
struct RawEntry {
  std::span<const std::uint8_t> key;
  // The value as bpf_map_lookup_elem returns it: for a per-CPU map (cpus > 0) `cpus` copies, each
  // padded to a multiple of 8 bytes; for an ARRAY_OF_MAPS the inner map's id (u32).
  std::span<const std::uint8_t> value;
  // Number of per-CPU copies in value; 0 for a map that is not per-CPU.
  unsigned cpus = 0;
  // ARRAY_OF_MAPS only: element 0 of the inner map (sm_backend_set for sm_backend_sets); empty
  // when it could not be read.
  std::span<const std::uint8_t> inner;
};

struct EntryText {
  std::string key;
  std::string value;
};

// Decodes one entry of map `map` (the name as the object declares it, e.g. "sm_services").
EntryText decode_entry(std::string_view map, const RawEntry &entry, const Names &names);

// What a map holds, one line ("service VIP:port/proto -> backend-set slot"); "" for a map this
// file does not know. libbpf's internal maps (NAME.rodata, .bss, .data) are described too.
std::string map_holds(std::string_view map);

// Why a map of this type cannot be listed from user space (sk_storage, ringbuf), one sentence;
// "" when it can. type as libbpf names it ("sk_storage", "ringbuf").
std::string not_listable_reason(std::string_view map, std::string_view type,
                                std::uint32_t max_entries);

// ---- building blocks, exposed for tests and for the traffic report ----

// "10.96.0.10", "fd00:96::1"; addr as the data path stores it (network order, IPv4 in addr[0]).
// An unknown family shows as "family N".
std::string address_text(const std::uint32_t addr[4], unsigned family);
// "10.96.0.10:80", "[fd00:96::1]:80"; port in network order.
std::string endpoint_text(const std::uint32_t addr[4], std::uint16_t port_net, unsigned family);
// "10.96.0.10:80/tcp" (the key form of Names::service_by_vip); proto is an IPPROTO_* number.
std::string vip_text(const std::uint32_t addr[4], std::uint16_t port_net, unsigned proto,
                     unsigned family);
// Whether an address slot holds an address: all-zero address and port mean "none" in the maps.
bool address_given(const std::uint32_t addr[4], std::uint16_t port_net);
// The workload a number names: its name and SPIFFE ID; {"#3", ""} for a number the agent does not
// know, {"unknown", ""} for 0 (no workload).
WorkloadName workload_of(std::uint32_t id, const Names &names);
// The service a VIP's text (vip_text) names; "unknown" when the agent knows none.
std::string service_of(const std::string &vip, const Names &names);
// "demo/client (#3)", "#3 (not known to the agent)", "unknown" for 0.
std::string workload_text(std::uint32_t id, const Names &names);
// Space-separated hex bytes, "0a 60 00 0a".
std::string hex_text(std::span<const std::uint8_t> bytes);

}  // namespace sockmesh::telemetry
