// SPDX-License-Identifier: GPL-2.0
/*
 * The one BPF object: the shared rings and helpers (common.bpf.h), which tasks a
 * filtered recording traces (filter.bpf.h), Python frames (python.bpf.h),
 * writing a stack record (stack_emit.bpf.h), the process lifecycle every trace needs (processes.bpf.c),
 * then every recorder's programs and maps (bpf/recorders/ *.bpf.c, listed into recorders.inc by
 * make), then the programs on tracepoints several recorders share
 * (dispatch.bpf.c). Userspace loads only the programs and creates only the
 * maps of the recorders that are on.
 *
 * Every record goes to the ring of the CPU it happened on, so userspace gets
 * one time-ordered-ish stream per CPU and no CPU can starve another's ring.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "systing.h"

char LICENSE[] SEC("license") = "GPL";

#include "common.bpf.h"
#include "filter.bpf.h"
#include "python.bpf.h"
#include "stack_emit.bpf.h"
#include "processes.bpf.c"
#include "recorders.inc"
#include "dispatch.bpf.c"
