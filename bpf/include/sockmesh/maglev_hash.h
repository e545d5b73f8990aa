/* The Maglev entry a connect uses: plain C shared by the BPF programs and user space, so the
 * agent's tests exercise the kernel's exact choice.
 *
 * The key is the client's cgroup id. Those are inode numbers, handed out nearly sequentially, so
 * the key is first run through the splitmix64 finalizer (Stafford's "Mix13" variant of
 * MurmurHash3's fmix64): every input bit flips each output bit with probability close to 1/2, and
 * consecutive ids land on unrelated entries. The finalizer is a bijection on 64 bits, so distinct
 * ids never collide before the modulo. The constants are part of the contract with the agent's
 * tests (test/unit/maglev); changing them moves every client to another entry. */
#ifndef SOCKMESH_MAGLEV_HASH_H
#define SOCKMESH_MAGLEV_HASH_H

#include "types.h"

static inline __u64 sm_maglev_mix64(__u64 x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/* Entry of a table of table_size entries (a Maglev table size, > 0) for the client client_key;
 * 0 when table_size is 0 so that a caller's bounds check is the only one needed. The 64-bit
 * modulo keeps the bias below table_size / 2^64. */
static inline __u32 sm_maglev_position(__u64 client_key, __u32 table_size) {
  if (table_size == 0) return 0;
  return (__u32)(sm_maglev_mix64(client_key) % table_size);
}

#endif
