/* test_corpus.c - real, unmodified programs under NPTL and under libsa-preload.so */

/*
 * Each test runs one program twice, as it is (glibc's NPTL) and with
 * LD_PRELOAD=libsa-preload.so, and compares what the two runs did: the
 * exit status and the output, exactly, or sorted when the program's
 * threads print in any order, or the figures that must not depend on
 * the threading (sysbench's event counts, memcached's answers).  The
 * preloaded run also has SA_STATS=1 and must report that its threads were
 * uthreads.  A program that is not installed makes its test skip, never
 * pass (tools/install-deps installs them all).
 */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TOP_BUILDDIR
#error "TOP_BUILDDIR must name the build directory"
#endif
#ifndef TOP_SRCDIR
#error "TOP_SRCDIR must name the source directory"
#endif

#define PRELOAD_LIB TOP_BUILDDIR "/.libs/libsa-preload.so"
#define CORPUS_BIN(name) TOP_BUILDDIR "/tests/corpus/" name
#define CORPUS_SRC(name) TOP_SRCDIR "/tests/corpus/" name
#define OUT_MAX (1 << 20)

struct run {
	int status;        /* exit status, or 128 + signal */
	char *out;         /* stdout, NUL-terminated */
	char err[8192];    /* stderr, truncated */
};

/* find_program - @name's path if it is an executable in $PATH (or a path). */
static const char *find_program(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? name : NULL;
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *end = strchrnul(path, ':');

		snprintf(buf, len, "%.*s/%s", (int)(end - path), path, name);
		if (access(buf, X_OK) == 0)
			return buf;
		path = *end ? end + 1 : end;
	}
	return NULL;
}

#define NEED_PROGRAM(var, name)                                                 \
	char var##_buf[4096];                                                   \
	const char *var = find_program(name, var##_buf, sizeof(var##_buf));    \
	if (!var)                                                               \
		cr_skip_test("%s is not installed (tools/install-deps installs it)", name)

static int tmp_fd(void)
{
	char path[] = "/tmp/sa-test-corpus-XXXXXX";
	int fd = mkstemp(path);

	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	return fd;
}

static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/*
 * start_cmd - start @argv, under the preload library if @preload, with
 * stdout and stderr going to @out_fd and @err_fd.  @vps, if not NULL, is
 * $SA_VPS.
 */
static pid_t start_cmd(char *const argv[], bool preload, const char *vps, int out_fd,
		       int err_fd)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(out_fd, 1);
		dup2(err_fd, 2);
		unsetenv("LD_PRELOAD");
		unsetenv("SA_STATS");
		if (preload) {
			setenv("LD_PRELOAD", PRELOAD_LIB, 1);
			setenv("SA_STATS", "1", 1);
			if (vps)
				setenv("SA_VPS", vps, 1);
		}
		setpgid(0, 0);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(126);
	}
	return pid;
}

/* wait_cmd - wait for @pid at most @secs seconds, then kill its group. */
static int wait_cmd(pid_t pid, int secs)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int st;

	for (long i = 0; i < secs * 100L; i++) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		nanosleep(&tick, NULL);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 255; /* "timed out" */
}

static void run_cmd(struct run *r, char *const argv[], bool preload, const char *vps,
		    int secs)
{
	int out = tmp_fd(), err = tmp_fd();

	r->status = wait_cmd(start_cmd(argv, preload, vps, out, err), secs);
	r->out = malloc(OUT_MAX);
	cr_assert(r->out);
	slurp(out, r->out, OUT_MAX);
	slurp(err, r->err, sizeof(r->err));
}

/* spawned - the "spawned=" counter SA_STATS printed at exit, or -1. */
static long spawned(const struct run *r)
{
	const char *s = strstr(r->err, "libsa: stats:");

	if (!s || !(s = strstr(s, " spawned=")))
		return -1;
	return strtol(s + 9, NULL, 10);
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sort_lines - @text with its lines in sorted order (in place). */
static void sort_lines(char *text)
{
	size_t n = 0, cap = 1024, len = strlen(text);
	char **lines = malloc(cap * sizeof(*lines)), *copy = strdup(text), *save, *l;

	cr_assert(lines && copy);
	for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (n == cap) {
			cap *= 2;
			lines = realloc(lines, cap * sizeof(*lines));
			cr_assert(lines);
		}
		lines[n++] = l;
	}
	qsort(lines, n, sizeof(*lines), cmp_lines);
	text[0] = '\0';
	for (size_t i = 0, at = 0; i < n; i++)
		at += (size_t)snprintf(text + at, len + 2 - at, "%s\n", lines[i]);
	free(lines);
	free(copy);
}

enum compare { SAME_OUTPUT, SAME_SORTED_OUTPUT };

/*
 * run_both - run @argv under NPTL and under the preload library (on @vps
 * VPs) and compare: same exit status (0), same output (sorted if asked),
 * and at least @min_threads uthreads made by the preloaded run.
 */
static void run_both(char *const argv[], const char *vps, enum compare how, int secs,
		     long min_threads)
{
	struct run nptl, sa;

	run_cmd(&nptl, argv, false, NULL, secs);
	cr_assert_eq(nptl.status, 0, "%s under NPTL exited %d:\n%s%s", argv[0], nptl.status,
		     nptl.out, nptl.err);
	run_cmd(&sa, argv, true, vps, secs);
	cr_assert_eq(sa.status, 0, "%s under libsa-preload.so (%s VPs) exited %d:\n%s%s",
		     argv[0], vps ? vps : "default", sa.status, sa.out, sa.err);
	if (how == SAME_SORTED_OUTPUT) {
		sort_lines(nptl.out);
		sort_lines(sa.out);
	}
	cr_assert_str_eq(sa.out, nptl.out, "%s: output differs.\nNPTL:\n%.2000s\npreload:\n%.2000s",
			 argv[0], nptl.out, sa.out);
	cr_assert_geq(spawned(&sa), min_threads, "%s made fewer uthreads than threads:\n%s",
		      argv[0], sa.err);
	free(nptl.out);
	free(sa.out);
}

TestSuite(corpus, .timeout = 300);

/* ---- programs built with the test suite, against glibc only ---- */

Test(corpus, c_10k_threads_errno_tls_stdio_1vp)
{
	char *argv[] = { CORPUS_BIN("c_threads10k"), NULL };

	run_both(argv, "1", SAME_SORTED_OUTPUT, 120, 10000);
}

Test(corpus, c_10k_threads_errno_tls_stdio_2vps)
{
	char *argv[] = { CORPUS_BIN("c_threads10k"), NULL };

	run_both(argv, "2", SAME_SORTED_OUTPUT, 120, 10000);
}

Test(corpus, cxx_thread_mutex_condvar_async_exceptions_1vp)
{
	char *argv[] = { CORPUS_BIN("cxx_workload"), NULL };

	run_both(argv, "1", SAME_OUTPUT, 120, 100);
}

Test(corpus, cxx_thread_mutex_condvar_async_exceptions_2vps)
{
	char *argv[] = { CORPUS_BIN("cxx_workload"), NULL };

	run_both(argv, "2", SAME_OUTPUT, 120, 100);
}

/* ---- Python 3 ---- */

static void python(const char *vps)
{
	NEED_PROGRAM(py, "python3");
	char *argv[] = { (char *)py, "-I", CORPUS_SRC("py_threading.py"), NULL };

	run_both(argv, vps, SAME_OUTPUT, 120, 60);
}

Test(corpus, python_threading_1vp) { python("1"); }
Test(corpus, python_threading_2vps) { python("2"); }

/* ---- sysbench ---- */

/* field - the number after @label in @text, or -1. */
static double field(const char *text, const char *label)
{
	const char *s = strstr(text, label);

	return s ? strtod(s + strlen(label), NULL) : -1;
}

/*
 * sysbench - run a sysbench test with a fixed number of events (so that
 * the count is the same in both runs) and compare the event counts and
 * the per-thread fairness figure sysbench derives from them.
 */
static void sysbench(const char *vps, char *const args[])
{
	NEED_PROGRAM(sb, "sysbench");
	char *argv[16] = { (char *)sb };
	struct run nptl, sa;
	int n = 1;

	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	run_cmd(&nptl, argv, false, NULL, 120);
	cr_assert_eq(nptl.status, 0, "sysbench under NPTL exited %d:\n%s%s", nptl.status,
		     nptl.out, nptl.err);
	run_cmd(&sa, argv, true, vps, 120);
	cr_assert_eq(sa.status, 0, "sysbench under libsa-preload.so exited %d:\n%s%s",
		     sa.status, sa.out, sa.err);
	cr_assert_gt(field(nptl.out, "total number of events:"), 0, "%s", nptl.out);
	cr_assert_eq(field(sa.out, "total number of events:"),
		     field(nptl.out, "total number of events:"), "NPTL:\n%s\npreload:\n%s",
		     nptl.out, sa.out);
	cr_assert(strstr(sa.out, "Threads fairness:"), "%s", sa.out);
	cr_assert_geq(spawned(&sa), 16, "sysbench's threads were not uthreads:\n%s", sa.err);
	free(nptl.out);
	free(sa.out);
}

static char *sb_threads[] = { "threads", "--threads=64", "--events=4000", "--time=0",
			      "--thread-yields=100", "--thread-locks=8", "run", NULL };
static char *sb_mutex[] = { "mutex", "--threads=32", "--mutex-num=64", "--mutex-locks=20000",
			    "--mutex-loops=100", "run", NULL };

Test(corpus, sysbench_threads_1vp) { sysbench("1", sb_threads); }
Test(corpus, sysbench_threads_2vps) { sysbench("2", sb_threads); }
Test(corpus, sysbench_mutex_1vp) { sysbench("1", sb_mutex); }
Test(corpus, sysbench_mutex_2vps) { sysbench("2", sb_mutex); }

/* ---- memcached serving a load from clients on loopback ---- */

#define MC_CLIENTS 16
#define MC_KEYS 300

/* free_port - a TCP port on 127.0.0.1 that nobody listens on right now. */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(s >= 0);
	cr_assert(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	cr_assert(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	close(s);
	return ntohs(a.sin_port);
}

static int mc_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (s < 0)
		return -1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* mc_reply - read until @buf ends with @end (or the peer closes). */
static bool mc_reply(int s, char *buf, size_t len, const char *end)
{
	size_t at = 0, elen = strlen(end);

	while (at < len - 1) {
		ssize_t n = read(s, buf + at, len - 1 - at);

		if (n <= 0)
			return false;
		at += (size_t)n;
		buf[at] = '\0';
		if (at >= elen && strcmp(buf + at - elen, end) == 0)
			return true;
	}
	return false;
}

static bool mc_send(int s, const char *msg, size_t len)
{
	while (len) {
		ssize_t n = write(s, msg, len);

		if (n <= 0)
			return false;
		msg += n;
		len -= (size_t)n;
	}
	return true;
}

struct mc_client {
	int port, id;
	long stored, hits, right, incr;
};

/* One client: set its keys, read them back, count with incr. */
static void *mc_client(void *arg)
{
	struct mc_client *c = arg;
	char msg[512], buf[4096];
	int s = mc_connect(c->port);

	if (s < 0)
		return NULL;
	for (int k = 0; k < MC_KEYS; k++) {
		int n = snprintf(buf, sizeof(buf), "value-%d-%d-%0*d", c->id, k, 40 + k % 50, k);
		int m = snprintf(msg, sizeof(msg), "set c%d_k%d 0 0 %d\r\n%s\r\n", c->id, k, n, buf);

		if (mc_send(s, msg, (size_t)m) && mc_reply(s, buf, sizeof(buf), "\r\n") &&
		    strcmp(buf, "STORED\r\n") == 0)
			c->stored++;
	}
	for (int k = 0; k < MC_KEYS; k++) {
		char want[256], head[64];
		int n = snprintf(want, sizeof(want), "value-%d-%d-%0*d", c->id, k, 40 + k % 50, k);
		int m = snprintf(msg, sizeof(msg), "get c%d_k%d\r\n", c->id, k);

		if (!mc_send(s, msg, (size_t)m) || !mc_reply(s, buf, sizeof(buf), "END\r\n"))
			break;
		snprintf(head, sizeof(head), "VALUE c%d_k%d 0 %d\r\n", c->id, k, n);
		if (strncmp(buf, head, strlen(head)) == 0) {
			c->hits++;
			c->right += strncmp(buf + strlen(head), want, (size_t)n) == 0;
		}
	}
	snprintf(msg, sizeof(msg), "set shared 0 0 1\r\n0\r\n");
	if (c->id == 0 && mc_send(s, msg, strlen(msg)))
		mc_reply(s, buf, sizeof(buf), "\r\n");
	close(s);
	return NULL;
}

/* mc_load - MC_CLIENTS concurrent clients; the totals as one line. */
static void mc_load(int port, char *line, size_t len)
{
	pthread_t t[MC_CLIENTS];
	struct mc_client c[MC_CLIENTS];
	long stored = 0, hits = 0, right = 0;

	for (int i = 0; i < MC_CLIENTS; i++) {
		c[i] = (struct mc_client){ .port = port, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, mc_client, &c[i]), 0);
	}
	for (int i = 0; i < MC_CLIENTS; i++) {
		pthread_join(t[i], NULL);
		stored += c[i].stored;
		hits += c[i].hits;
		right += c[i].right;
	}
	snprintf(line, len, "stored %ld hits %ld right %ld", stored, hits, right);
}

/*
 * memcached - serve the load with memcached under NPTL or the preload
 * library, with 8 worker threads, and return the client's totals.  When
 * memcslap is installed, it adds a load of its own before.
 */
static void memcached_run(const char *mc, bool preload, const char *vps, char *line,
			  size_t len)
{
	char portstr[16], err[8192];
	char slap_buf[4096];
	const char *slap = find_program("memcslap", slap_buf, sizeof(slap_buf));
	int out = tmp_fd(), errfd = tmp_fd(), port = 0, s = -1, status;
	pid_t pid = -1;

	/* Another process may take the port between our look and memcached's
	 * bind: then memcached exits, and we try another. */
	for (int tries = 0; tries < 5 && s < 0; tries++) {
		char *argv[] = { (char *)mc, "-U", "0", "-l", "127.0.0.1", "-p", portstr, "-t",
				 "8", "-c", "256", "-u", "root", NULL };

		port = free_port();
		snprintf(portstr, sizeof(portstr), "%d", port);
		pid = start_cmd(argv, preload, vps, out, errfd);
		for (int i = 0; i < 500 && s < 0; i++) {
			struct timespec tick = { 0, 10 * 1000 * 1000 };

			if (waitpid(pid, &status, WNOHANG) == pid) {
				pid = -1;
				break;
			}
			s = mc_connect(port);
			if (s < 0)
				nanosleep(&tick, NULL);
		}
		if (s < 0 && pid > 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	cr_assert(s >= 0, "memcached did not start");
	close(s);
	if (slap) {
		char servers[64];
		char *sargv[] = { (char *)slap, servers, "--concurrency=16",
				  "--execute-number=500", NULL };
		int so = tmp_fd(), se = tmp_fd(), st;

		snprintf(servers, sizeof(servers), "--servers=127.0.0.1:%d", port);
		st = wait_cmd(start_cmd(sargv, false, NULL, so, se), 120);
		close(so);
		close(se);
		cr_assert_eq(st, 0, "memcslap exited %d", st);
	}
	mc_load(port, line, len);
	kill(pid, SIGTERM);
	status = wait_cmd(pid, 60);
	slurp(errfd, err, sizeof(err));
	close(out);
	cr_assert(status == 0 || status == 128 + SIGTERM, "memcached exited %d:\n%s", status,
		  err);
	if (preload && status == 0) {
		struct run r = { .status = status };

		memcpy(r.err, err, sizeof(err));
		cr_assert_geq(spawned(&r), 8, "memcached's threads were not uthreads:\n%s", err);
	}
}

static void memcached(const char *vps)
{
	NEED_PROGRAM(mc, "memcached");
	char nptl[128], sa[128];

	memcached_run(mc, false, NULL, nptl, sizeof(nptl));
	memcached_run(mc, true, vps, sa, sizeof(sa));
	cr_assert_str_eq(sa, nptl, "memcached answered differently under libsa-preload.so");
	cr_assert_str_eq(nptl, "stored 4800 hits 4800 right 4800", "NPTL run: %s", nptl);
}

Test(corpus, memcached_loopback_load_1vp) { memcached("1"); }
Test(corpus, memcached_loopback_load_2vps) { memcached("2"); }
