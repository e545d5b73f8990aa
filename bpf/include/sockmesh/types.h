/* Integer types for headers shared by the BPF programs and user space.
 * BPF objects get them from vmlinux.h; user space from <linux/types.h>. */
#ifndef SOCKMESH_TYPES_H
#define SOCKMESH_TYPES_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#endif
