/* sa_abi.h - the user-space ABI of the scheduler-activations kernel series */
#ifndef SA_UPCALL_ABI_H
#define SA_UPCALL_ABI_H

/*
 * The definitions of include/uapi/linux/sa.h in kernel-patches/ (patch
 * 0001), which Documentation/userspace-api/sa.rst and sa_ctl(2) describe.
 * They are repeated here so that libsa builds against any kernel's
 * headers; a kernel without the series answers -ENOSYS (or, on kernels
 * that gave the numbers to other calls, is never asked: kernel.c).
 */

#include <stdint.h>

#define SA_NR_CREATE 451
#define SA_NR_CTL 452

struct sa_params {
	uint32_t flags, max_acts, processors, reserved;
};

enum {
	SA_CTL_REGISTER = 1,
	SA_CTL_UNREGISTER = 2,
	SA_CTL_WAIT = 3,
	SA_CTL_IDLE = 4,
	SA_CTL_WAKE = 5,
	SA_CTL_SWITCH = 6,
	SA_CTL_RELEASE = 7,
	SA_CTL_INFO = 8,
	SA_CTL_DISSOLVE = 9,
	SA_CTL_SET_PROCESSORS = 10,
};

#define SA_REG_RUNNING 0x1
#define SA_REG_SPARE 0x2

struct sa_register {
	uint32_t flags, id;
	uint64_t cookie, entry, stack;
};

#define SA_WAIT_SPARE 0x1

enum {
	SA_STATE_FREE = 0,
	SA_STATE_RUNNING = 1,
	SA_STATE_IDLE = 2,
	SA_STATE_BLOCKED = 3,
	SA_STATE_PARKED = 4,
	SA_STATE_SPARE = 5,
};

enum {
	SA_EV_NONE = 0,
	SA_EV_BLOCKED = 1,
	SA_EV_UNBLOCKED = 2,
	SA_EV_PREEMPTED = 3,
	SA_EV_PROCESSOR = 4,
	SA_EV_EXITED = 5,
};

#define SA_EVF_LOST 0x1
#define SA_EVF_RESUMED (1ull << 63)
#define SA_EVF_KERNEL (1ull << 62)
#define SA_EVF_TAKEN (1ull << 61)
#define SA_EVF_IP_MASK ((1ull << 56) - 1)

struct sa_event {
	uint32_t type, act;
	uint64_t cookie, seq, arg;
};

struct sa_uregs {
	uint64_t ip, sp, flags;
	uint64_t ax, bx, cx, dx, si, di, bp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t orig_ax;
};

#define SA_SLOT_QUIET 0x1
#define SA_SLOT_PREEMPTED 0x2

struct sa_slot {
	uint32_t state, flags;
	uint64_t cookie;
	struct sa_event mailbox;
	struct sa_uregs regs;
	uint64_t pad[7];
};

struct sa_header {
	uint32_t version, max_acts, slots_off, ring_off, ring_entries;
	uint32_t granted, held, lost;
	uint32_t ring_head, ring_tail, ring_dropped;
	uint32_t target, demand;
	uint32_t reserved[3];
};

#define SA_SHARED_VERSION 1

struct sa_info {
	uint32_t granted, held, running, idle, blocked, parked, spare, lost;
	uint32_t nr_acts, max_acts;
	uint64_t events, dropped;
	uint32_t target, demand;
};

_Static_assert(sizeof(struct sa_params) == 16, "sa_params");
_Static_assert(sizeof(struct sa_register) == 32, "sa_register");
_Static_assert(sizeof(struct sa_event) == 32, "sa_event");
_Static_assert(sizeof(struct sa_header) == 64, "sa_header");
_Static_assert(sizeof(struct sa_slot) % 64 == 0, "sa_slot");
_Static_assert(sizeof(struct sa_info) == 64, "sa_info");

#endif /* SA_UPCALL_ABI_H */
