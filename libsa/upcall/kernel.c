/* kernel.c - the upcalls from a kernel with the libsa patch series */

/*
 * The patch series (kernel-patches/) is what delivers the four events
 * here.  This file probes for it; a kernel without it reports -ENOSYS, so
 * the emulated backend is used, and SA_BACKEND=kernel fails with a clear
 * message.
 */

#include <sys/prctl.h>

#include "upcall/upcall.h"

/*
 * The patch series answers this prctl() option with its interface
 * version; stock kernels answer -EINVAL.
 */
#define PR_SA_ACTIVATIONS 0x53410001

static int kernel_probe(void)
{
	long r = sa_syscall6(SYS_prctl, PR_SA_ACTIVATIONS, 0, 0, 0, 0, 0);

	return r >= 0 ? -ENOTSUP : -ENOSYS; /* the event delivery is not wired yet */
}

static int kernel_start(void)
{
	return -ENOSYS;
}

static int kernel_enter(struct act *a)
{
	(void)a;
	return -ENOSYS;
}

static void kernel_leave(struct act *a)
{
	(void)a;
}

static void kernel_displaced(struct act *a)
{
	(void)a;
}

const struct upcall_backend upcall_kernel = {
	.name = "kernel",
	.id = SA_BACKEND_KERNEL,
	.probe = kernel_probe,
	.start = kernel_start,
	.run = kernel_start,
	.enter = kernel_enter,
	.leave = kernel_leave,
	.displaced = kernel_displaced,
};
