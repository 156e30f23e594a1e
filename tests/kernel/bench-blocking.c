/* bench-blocking.c - guest benchmark: libsa's block and resume latency, kernel backend against emulated */

/*
 * Runs inside the check-kernel guest (check-kernel --only bench,
 * tests/kernel/bench-kernel).  On a runtime with one VP, uthread A makes a
 * raw read(2) of a pipe, which libsa cannot see, and uthread B writes the
 * byte that ends it:
 *
 *   block   from A entering the read to B running on the VP: the blocked
 *           upcall (kernel backend) or the watchdog's hand-off of the VP
 *           to a spare thread (emulated backend, after SA_BLOCKED_US);
 *   resume  from B's write to A running again, B parked on a semaphore:
 *           the unblocked upcall and the switch back to A's activation,
 *           or the emulated backend's give-back of the returned thread.
 *
 * Each backend runs in a child process of its own (SA_BACKEND=kernel,
 * SA_BACKEND=emulated: a runtime starts once per process), in the same
 * guest boot; the parent measures a futex wake-up between two plain
 * threads as the reference.  Printed: medians and minima, the ratio
 * kernel/emulated and each against the futex wake-up, as a table and as
 * one JSON object a line prefixed "SA-BENCH " (the host collects them).
 * A backend that cannot run here (the kernel one on a stock kernel) is
 * reported and left out; the exit status is 0 all the same.  Under TCG
 * only the ratios mean something.
 */

#include <errno.h>
#include <stddef.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sa/sa.h>

#define WARMUP 20
#define ROUNDS 400
#define FUTEX_ROUNDS 2000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* sort_stats - sort @v; its median and minimum */
static void sort_stats(uint64_t *v, int n, uint64_t *med, uint64_t *min)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	*med = v[n / 2];
	*min = v[0];
}

/* ---- the reference: a futex wake-up between two threads ---------------- */

static _Atomic uint32_t fword;
static _Atomic uint64_t fstamp;
static uint64_t fut_lat[FUTEX_ROUNDS];

static void *futex_waiter(void *arg)
{
	(void)arg;
	for (int i = 0; i < FUTEX_ROUNDS; i++) {
		while (atomic_load(&fword) == 0)
			syscall(SYS_futex, &fword, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		fut_lat[i] = now_ns() - atomic_load(&fstamp);
		atomic_store(&fword, 0);
	}
	return NULL;
}

static void bench_futex(uint64_t *med, uint64_t *min)
{
	pthread_t t;

	if (pthread_create(&t, NULL, futex_waiter, NULL)) {
		perror("bench-blocking: pthread_create");
		exit(1);
	}
	for (int i = 0; i < FUTEX_ROUNDS; i++) {
		usleep(200); /* let the waiter fall asleep */
		atomic_store(&fstamp, now_ns());
		atomic_store(&fword, 1);
		syscall(SYS_futex, &fword, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		while (atomic_load(&fword))
			sched_yield();
	}
	pthread_join(t, NULL);
	sort_stats(fut_lat, FUTEX_ROUNDS, med, min);
}

/* ---- the child: one backend, one VP ------------------------------------ */

static int pfd[2];
static sa_sem_t go_b;
static _Atomic uint64_t t_block, t_write;
static uint64_t lat_block[WARMUP + ROUNDS], lat_resume[WARMUP + ROUNDS];
static _Atomic int failed;

/* A: wakes B (runnable, not running: one VP), then blocks unseen. */
static void *blocker(void *arg)
{
	char c;

	(void)arg;
	for (int i = 0; i < WARMUP + ROUNDS; i++) {
		if (sa_sem_post(&go_b))
			atomic_store(&failed, 1);
		atomic_store(&t_block, now_ns());
		if (syscall(SYS_read, pfd[0], &c, 1) != 1)
			atomic_store(&failed, 1);
		lat_resume[i] = now_ns() - atomic_load(&t_write);
	}
	return NULL;
}

/* B: runs once A blocked, ends A's read, and parks until the next round. */
static void *other(void *arg)
{
	(void)arg;
	for (int i = 0; i < WARMUP + ROUNDS; i++) {
		if (sa_sem_wait(&go_b))
			atomic_store(&failed, 1);
		lat_block[i] = now_ns() - atomic_load(&t_block);
		atomic_store(&t_write, now_ns());
		if (syscall(SYS_write, pfd[1], "x", 1) != 1)
			atomic_store(&failed, 1);
	}
	return NULL;
}

static int child(const char *want)
{
	uint64_t bmed, bmin, rmed, rmin;
	struct sa_stats st = { 0 };
	sa_uthread_t a, b;
	const char *got;
	int r;

	r = sa_init(1);
	got = sa_backend();
	if (r || !got || strcmp(got, want)) {
		printf("UNAVAILABLE %s\n", r ? strerror(-r) : "another backend started");
		return 0;
	}
	if (pipe(pfd) || sa_sem_init(&go_b, 0)) {
		perror("bench-blocking: pipe");
		return 1;
	}
	if (sa_spawn(&b, NULL, other, NULL) || sa_spawn(&a, NULL, blocker, NULL)) {
		fprintf(stderr, "bench-blocking: sa_spawn failed\n");
		return 1;
	}
	sa_join(a, NULL);
	sa_join(b, NULL);
	if (atomic_load(&failed)) {
		fprintf(stderr, "bench-blocking: a read, write or semaphore call failed\n");
		return 1;
	}
	sa_stats_get(&st, sizeof(st));
	sort_stats(lat_block + WARMUP, ROUNDS, &bmed, &bmin);
	sort_stats(lat_resume + WARMUP, ROUNDS, &rmed, &rmin);
	printf("RESULT %llu %llu %llu %llu %llu %llu\n", (unsigned long long)bmed,
	       (unsigned long long)bmin, (unsigned long long)rmed,
	       (unsigned long long)rmin, (unsigned long long)st.blocked_handoffs,
	       (unsigned long long)st.unblocks);
	return 0;
}

/* ---- the parent: both children, the table ------------------------------ */

struct backend {
	const char *name;
	int ok;
	uint64_t bmed, bmin, rmed, rmin, handoffs, unblocks;
	char why[300];
};

/* run_child - SA_BACKEND=@b->name in a child process; parse its line */
static void run_child(const char *self, struct backend *b)
{
	char line[256] = "";
	int fds[2], status;
	FILE *f;
	pid_t pid;

	if (pipe(fds)) {
		perror("bench-blocking: pipe");
		exit(1);
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("bench-blocking: fork");
		exit(1);
	}
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setenv("SA_BACKEND", b->name, 1);
		setenv("SA_VPS", "1", 1);
		execl(self, self, "--child", b->name, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long v[6];

		if (sscanf(line, "RESULT %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5]) == 6) {
			b->ok = 1;
			b->bmed = v[0], b->bmin = v[1], b->rmed = v[2], b->rmin = v[3];
			b->handoffs = v[4], b->unblocks = v[5];
		} else if (!strncmp(line, "UNAVAILABLE ", 12)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(b->why, sizeof(b->why), "not available: %s", line + 12);
		}
	}
	if (f)
		fclose(f);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		if (!b->why[0])
			snprintf(b->why, sizeof(b->why), "the child failed (status %#x)", status);
		b->ok = 0;
	}
}

static void json(const char *bench, const char *unit, uint64_t med, uint64_t min)
{
	printf("SA-BENCH {\"bench\":\"%s\",\"cpus\":\"1vp\",\"unit\":\"%s\","
	       "\"median\":%llu,\"min\":%llu}\n",
	       bench, unit, (unsigned long long)med, (unsigned long long)min);
}

/* row - one figure of both backends (at @off in struct backend), the
 * ratio between them and, with @ref, each against @ref; "-" where a
 * backend did not run */
static void row(const char *what, const struct backend *be, size_t off, uint64_t ref)
{
	char v[2][24], r[3][16];
	uint64_t x[2];

	for (int i = 0; i < 2; i++) {
		x[i] = *(const uint64_t *)((const char *)&be[i] + off);
		if (be[i].ok)
			snprintf(v[i], sizeof(v[i]), "%llu", (unsigned long long)x[i]);
		else
			snprintf(v[i], sizeof(v[i]), "-");
	}
	if (ref) {
		snprintf(r[0], sizeof(r[0]), "-");
		if (be[0].ok && be[1].ok && x[1])
			snprintf(r[0], sizeof(r[0]), "%.3fx", (double)x[0] / (double)x[1]);
		for (int i = 0; i < 2; i++)
			snprintf(r[i + 1], sizeof(r[i + 1]), be[i].ok ? "%.2fx" : "-",
				 (double)x[i] / (double)ref);
	}
	if (ref)
		printf("%-36s %12s %12s %10s %11s %11s\n", what, v[0], v[1], r[0], r[1], r[2]);
	else
		printf("%-36s %12s %12s\n", what, v[0], v[1]);
}

int main(int argc, char **argv)
{
	struct backend be[2] = { { .name = "kernel" }, { .name = "emulated" } };
	uint64_t fmed, fmin;

	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: %s\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_futex(&fmed, &fmin);
	for (int i = 0; i < 2; i++)
		run_child("/proc/self/exe", &be[i]);

	printf("libsa block/resume latency, 1 VP, %d rounds (ns; under TCG only ratios mean something)\n",
	       ROUNDS);
	printf("%-36s %12s %12s %10s %11s %11s\n", "", "kernel", "emulated", "kern/emul",
	       "kern/futex", "emul/futex");
	row("block -> other uthread runs, median", be, offsetof(struct backend, bmed), fmed);
	row("wake-up -> blocked one runs, median", be, offsetof(struct backend, rmed), fmed);
	row("block, minimum", be, offsetof(struct backend, bmin), 0);
	row("resume, minimum", be, offsetof(struct backend, rmin), 0);
	row("sa_stats: blocked_handoffs", be, offsetof(struct backend, handoffs), 0);
	row("sa_stats: unblocks", be, offsetof(struct backend, unblocks), 0);
	printf("%-36s %12llu (min %llu)\n", "futex wake-up (reference), median",
	       (unsigned long long)fmed, (unsigned long long)fmin);
	for (int i = 0; i < 2; i++)
		if (!be[i].ok)
			printf("%s backend: %s\n", be[i].name, be[i].why);

	json("libsa-futex-wake", "ns", fmed, fmin);
	for (int i = 0; i < 2; i++) {
		char name[64];

		if (!be[i].ok)
			continue;
		snprintf(name, sizeof(name), "libsa-block-%s", be[i].name);
		json(name, "ns", be[i].bmed, be[i].bmin);
		snprintf(name, sizeof(name), "libsa-resume-%s", be[i].name);
		json(name, "ns", be[i].rmed, be[i].rmin);
	}
	return 0;
}
