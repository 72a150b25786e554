// SPDX-License-Identifier: GPL-2.0
/*
 * Prints the layout of every struct in bpf/systing.h as JSON, as the C
 * compiler sees it, for test/records_layout_test.ts to compare with
 * src/records.ts. Compiled as plain C, so the header uses its stdint fallback.
 *
 * {"constants":{…},"kinds":{"REC_…":n,…},
 *  "structs":{"name":{"size":n,"fields":{"field":{"offset":n,"size":n},…}},…}}
 */
#include <stddef.h>
#include <stdio.h>

#include "../../bpf/systing.h"

static int first_struct = 1, first_field;

static void begin(const char *name, size_t size)
{
	printf("%s\"%s\":{\"size\":%zu,\"fields\":{", first_struct ? "" : ",", name, size);
	first_struct = 0;
	first_field = 1;
}

static void field(const char *name, size_t offset, size_t size)
{
	printf("%s\"%s\":{\"offset\":%zu,\"size\":%zu}", first_field ? "" : ",", name, offset, size);
	first_field = 0;
}

static void end(void)
{
	printf("}}");
}

#define BEGIN(s) begin(#s, sizeof(struct s))
#define FIELD(s, f) field(#f, offsetof(struct s, f), sizeof(((struct s *)0)->f))

int main(void)
{
	printf("{\"constants\":{\"SYSTING_COMM_LEN\":%d,\"SYSTING_IRQ_NAME_LEN\":%d,"
	       "\"SYSTING_PATH_LEN\":%d,\"SYSTING_ARGS_LEN\":%d,\"SYSTING_MAX_CPUS\":%d,"
	       "\"SYSTING_MAX_FRAMES\":%d,\"SYSTING_MAX_STACK_COPY\":%d},",
	       SYSTING_COMM_LEN, SYSTING_IRQ_NAME_LEN, SYSTING_PATH_LEN, SYSTING_ARGS_LEN,
	       SYSTING_MAX_CPUS, SYSTING_MAX_FRAMES, SYSTING_MAX_STACK_COPY);

	printf("\"kinds\":{");
#define KIND(k) printf("\"%s\":%d,", #k, (int)k)
	KIND(REC_SCHED_SWITCH);
	KIND(REC_SCHED_WAKING);
	KIND(REC_SCHED_WAKEUP_NEW);
	KIND(REC_SCHED_PROCESS_FORK);
	KIND(REC_SCHED_PROCESS_EXEC);
	KIND(REC_SCHED_PROCESS_EXIT);
	KIND(REC_TASK_RENAME);
	KIND(REC_IRQ_HANDLER_ENTRY);
	KIND(REC_IRQ_HANDLER_EXIT);
	KIND(REC_SOFTIRQ_ENTRY);
	KIND(REC_SOFTIRQ_EXIT);
	KIND(REC_STACK);
	KIND(REC_SLEEP_END);
	printf("\"REC_KIND_COUNT\":%d},", (int)REC_KIND_COUNT);

	printf("\"structs\":{");

	BEGIN(rec_hdr);
	FIELD(rec_hdr, kind);
	FIELD(rec_hdr, size);
	FIELD(rec_hdr, lost);
	FIELD(rec_hdr, ts);
	end();

	BEGIN(rec_sched_switch);
	FIELD(rec_sched_switch, hdr);
	FIELD(rec_sched_switch, prev_pid);
	FIELD(rec_sched_switch, next_pid);
	FIELD(rec_sched_switch, prev_state);
	FIELD(rec_sched_switch, next_prio);
	FIELD(rec_sched_switch, __pad0);
	FIELD(rec_sched_switch, next_comm);
	end();

	BEGIN(rec_sched_waking);
	FIELD(rec_sched_waking, hdr);
	FIELD(rec_sched_waking, pid);
	FIELD(rec_sched_waking, target_cpu);
	FIELD(rec_sched_waking, prio);
	FIELD(rec_sched_waking, common_flags);
	FIELD(rec_sched_waking, comm);
	end();

	BEGIN(rec_sched_process_fork);
	FIELD(rec_sched_process_fork, hdr);
	FIELD(rec_sched_process_fork, parent_pid);
	FIELD(rec_sched_process_fork, parent_tgid);
	FIELD(rec_sched_process_fork, child_pid);
	FIELD(rec_sched_process_fork, child_tgid);
	FIELD(rec_sched_process_fork, parent_comm);
	FIELD(rec_sched_process_fork, child_comm);
	end();

	BEGIN(rec_sched_process_exec);
	FIELD(rec_sched_process_exec, hdr);
	FIELD(rec_sched_process_exec, pid);
	FIELD(rec_sched_process_exec, tgid);
	FIELD(rec_sched_process_exec, old_pid);
	FIELD(rec_sched_process_exec, args_len);
	FIELD(rec_sched_process_exec, comm);
	FIELD(rec_sched_process_exec, filename);
	FIELD(rec_sched_process_exec, args);
	end();

	BEGIN(rec_sched_process_exit);
	FIELD(rec_sched_process_exit, hdr);
	FIELD(rec_sched_process_exit, pid);
	FIELD(rec_sched_process_exit, tgid);
	FIELD(rec_sched_process_exit, prio);
	FIELD(rec_sched_process_exit, __pad0);
	FIELD(rec_sched_process_exit, comm);
	end();

	BEGIN(rec_task_rename);
	FIELD(rec_task_rename, hdr);
	FIELD(rec_task_rename, pid);
	FIELD(rec_task_rename, tgid);
	FIELD(rec_task_rename, oldcomm);
	FIELD(rec_task_rename, newcomm);
	end();

	BEGIN(rec_irq);
	FIELD(rec_irq, hdr);
	FIELD(rec_irq, irq);
	FIELD(rec_irq, ret);
	FIELD(rec_irq, name);
	end();

	BEGIN(rec_softirq);
	FIELD(rec_softirq, hdr);
	FIELD(rec_softirq, vec);
	FIELD(rec_softirq, __pad0);
	end();

	BEGIN(rec_stack);
	FIELD(rec_stack, hdr);
	FIELD(rec_stack, pid);
	FIELD(rec_stack, tgid);
	FIELD(rec_stack, cpu);
	FIELD(rec_stack, source);
	FIELD(rec_stack, flags);
	FIELD(rec_stack, kernel_frames);
	FIELD(rec_stack, user_frames);
	FIELD(rec_stack, __pad0);
	FIELD(rec_stack, copy_bytes);
	FIELD(rec_stack, __pad1);
	FIELD(rec_stack, user_ip);
	FIELD(rec_stack, user_sp);
	FIELD(rec_stack, user_bp);
	end();

	BEGIN(rec_sleep_end);
	FIELD(rec_sleep_end, hdr);
	FIELD(rec_sleep_end, pid);
	FIELD(rec_sleep_end, __pad0);
	FIELD(rec_sleep_end, out_ts);
	end();

	BEGIN(systing_config);
	FIELD(systing_config, tracer_tgid);
	FIELD(systing_config, wakeup_bytes);
	FIELD(systing_config, stack_bits);
	FIELD(systing_config, stack_copy_bytes);
	FIELD(systing_config, sleep_copies_per_sec);
	FIELD(systing_config, __pad0);
	end();

	printf("}}\n");
	return 0;
}
