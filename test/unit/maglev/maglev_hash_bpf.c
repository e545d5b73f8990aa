/* Compiled for the kernel by the maglev_hash_compiles_for_bpf test: the shared header with the
 * types a BPF object gets, from vmlinux.h, which must come first as in bpf/ programs. */
// clang-format off
#include "vmlinux.h"
#include "sockmesh/maglev_hash.h"
// clang-format on

__u32 maglev_position(__u64 client_key, __u32 table_size) {
  return sm_maglev_position(client_key, table_size);
}
