/* pt_fileio.c - open, creat, close, fsync and fdatasync from threads
 *
 * One case per run (pt_main).  The results and errors must be the C
 * library's; an open that waits (a FIFO until its writer opens it) must
 * park only its thread: on one VP without the blocked hand-off, the
 * writer that ends the wait runs on the same VP.  The same under NPTL.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "pt.h"

int __open_2(const char *path, int flags);

static char dir[] = "/tmp/pt_fileio.XXXXXX";

static void make_dir(void)
{
	PT_CHECK(mkdtemp(dir) != NULL);
}

static void remove_dir(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	PT_CHECK(system(cmd) == 0);
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* Each case body runs on a thread, so that the calls are a thread's. */
static void on_thread(void (*fn)(void))
{
	pthread_t t;

	make_dir();
	PT_OK(pthread_create(&t, NULL, (void *(*)(void *))(void *)fn, NULL));
	PT_OK(pthread_join(t, NULL));
	remove_dir();
}

/* ---- open's flags, mode and errors; creat; the 64 and fortify names ---- */

static void opens(void)
{
	char p[128];
	struct stat st;
	int fd;

	umask(022);
	path_of(p, sizeof(p), "a");
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
	PT_CHECK(fd >= 0);
	PT_CHECK(fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0640);
	PT_CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	PT_CHECK(write(fd, "xyz", 3) == 3);
	PT_OK(close(fd));
	errno = 0;
	PT_CHECK(open(p, O_CREAT | O_EXCL | O_WRONLY, 0600) == -1 && errno == EEXIST);
	fd = openat(AT_FDCWD, p, O_RDONLY);
	PT_CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
	PT_OK(close(fd));
	fd = open64(p, O_RDWR | O_APPEND);
	PT_CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_APPEND));
	PT_OK(close(fd));
	fd = __open_2(p, O_RDONLY);
	PT_CHECK(fd >= 0);
	PT_OK(close(fd));
	path_of(p, sizeof(p), "b");
	fd = creat(p, 0604);
	PT_CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY);
	PT_CHECK(fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0604);
	PT_OK(close(fd));
	path_of(p, sizeof(p), "none/c");
	errno = 0;
	PT_CHECK(open(p, O_RDONLY) == -1 && errno == ENOENT);
	errno = 0;
	PT_CHECK(openat(-5, "relative", O_RDONLY) == -1 && errno == EBADF);
	errno = 0;
	PT_CHECK(open(dir, O_WRONLY) == -1 && errno == EISDIR);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	PT_CHECK(fd >= 0);
	fd = openat(fd, "a", O_RDONLY);
	PT_CHECK(fd >= 0);
	PT_OK(close(fd));
	fd = open(dir, O_TMPFILE | O_RDWR, 0600);
	PT_CHECK(fd >= 0 || errno == EOPNOTSUPP);
	if (fd >= 0)
		PT_OK(close(fd));
}

static void case_opens(void)
{
	on_thread(opens);
}

/* ---- close: a descriptor closes once; then EBADF ---- */

static void closes(void)
{
	int p[2];

	PT_OK(pipe(p));
	PT_OK(close(p[0]));
	errno = 0;
	PT_CHECK(close(p[0]) == -1 && errno == EBADF);
	errno = 0;
	PT_CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
	PT_OK(close(p[1]));
	errno = 0;
	PT_CHECK(close(-1) == -1 && errno == EBADF);
}

static void case_closes(void)
{
	signal(SIGPIPE, SIG_IGN);
	on_thread(closes);
}

/* ---- fsync and fdatasync: 0 on a file, EINVAL on a pipe, EBADF ---- */

static void syncs(void)
{
	char p[128];
	int fd, pp[2];

	path_of(p, sizeof(p), "s");
	fd = open(p, O_CREAT | O_RDWR, 0600);
	PT_CHECK(fd >= 0);
	PT_CHECK(write(fd, "data", 4) == 4);
	PT_OK(fsync(fd));
	PT_OK(fdatasync(fd));
	PT_OK(close(fd));
	PT_OK(pipe(pp));
	errno = 0;
	PT_CHECK(fsync(pp[0]) == -1 && errno == EINVAL);
	errno = 0;
	PT_CHECK(fdatasync(pp[1]) == -1 && errno == EINVAL);
	PT_OK(close(pp[0]));
	PT_OK(close(pp[1]));
	errno = 0;
	PT_CHECK(fsync(fd) == -1 && errno == EBADF);
	errno = 0;
	PT_CHECK(fdatasync(fd) == -1 && errno == EBADF);
}

static void case_syncs(void)
{
	on_thread(syncs);
}

/* ---- a FIFO's open waits for the other end, which another thread opens ---- */

static char fifo[128];
static atomic_int reader_waiting;

static void *fifo_reader(void *arg)
{
	char buf[8] = { 0 };
	int fd;

	(void)arg;
	atomic_store(&reader_waiting, 1);
	fd = open(fifo, O_RDONLY); /* waits for the writer */
	PT_CHECK(fd >= 0);
	PT_CHECK(read(fd, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0);
	PT_OK(close(fd));
	return NULL;
}

static void *fifo_writer(void *arg)
{
	int fd;

	(void)arg;
	while (!atomic_load(&reader_waiting))
		sched_yield();
	usleep(20 * 1000); /* the reader is in its open by now */
	fd = open(fifo, O_WRONLY);
	PT_CHECK(fd >= 0);
	PT_CHECK(write(fd, "hello", 5) == 5);
	PT_OK(close(fd));
	return NULL;
}

static void case_fifo_open_waits(void)
{
	pthread_t r, w;

	make_dir();
	path_of(fifo, sizeof(fifo), "fifo");
	PT_OK(mkfifo(fifo, 0600));
	PT_OK(pthread_create(&r, NULL, fifo_reader, NULL));
	PT_OK(pthread_create(&w, NULL, fifo_writer, NULL));
	PT_OK(pthread_join(r, NULL));
	PT_OK(pthread_join(w, NULL));
	remove_dir();
}

/* ---- open is a cancellation point: a thread waiting in one is cancelled ---- */

static void *fifo_stuck(void *arg)
{
	(void)arg;
	atomic_store(&reader_waiting, 1);
	open(fifo, O_RDONLY); /* no writer ever comes */
	PT_CHECK(!"open returned");
	return NULL;
}

static void case_cancel_in_open(void)
{
	pthread_t t;
	void *r;

	make_dir();
	path_of(fifo, sizeof(fifo), "fifo");
	PT_OK(mkfifo(fifo, 0600));
	PT_OK(pthread_create(&t, NULL, fifo_stuck, NULL));
	while (!atomic_load(&reader_waiting))
		sched_yield();
	usleep(20 * 1000);
	PT_OK(pthread_cancel(t));
	PT_OK(pthread_join(t, &r));
	PT_CHECK(r == PTHREAD_CANCELED);
	remove_dir();
}

static const struct pt_case cases[] = {
	{ "opens", case_opens },
	{ "closes", case_closes },
	{ "syncs", case_syncs },
	{ "fifo_open_waits", case_fifo_open_waits },
	{ "cancel_in_open", case_cancel_in_open },
};

int main(int argc, char **argv)
{
	return pt_main("pt_fileio", cases, sizeof(cases) / sizeof(cases[0]), 20, argc, argv);
}
