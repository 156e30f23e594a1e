/* sa-run.c - run a program with its pthreads as libsa uthreads (LD_PRELOAD launcher) */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SA_PRELOAD_LIB
#define SA_PRELOAD_LIB "libsa-preload.so"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sa-run [-n VPS] [--stats] [--] PROGRAM [ARGS...]\n"
		"Run PROGRAM with libsa-preload.so: every pthread is a uthread.\n"
		"  -n, --vps VPS  number of virtual processors (1-256; sets SA_VPS)\n"
		"  --stats        print the runtime counters at exit (sets SA_STATS=1)\n"
		"  -h, --help     show this help\n"
		"SA_PRELOAD names another copy of the library (default %s).\n",
		SA_PRELOAD_LIB);
}

static int bad(const char *fmt, const char *arg)
{
	fputs("sa-run: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

/* preload_value - @lib put in front of an existing $LD_PRELOAD. */
static char *preload_value(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	size_t n;
	char *v;

	if (!old || !*old)
		return strdup(lib);
	n = strlen(lib) + 1 + strlen(old) + 1;
	v = malloc(n);
	if (v)
		snprintf(v, n, "%s:%s", lib, old);
	return v;
}

int main(int argc, char **argv)
{
	const char *lib = getenv("SA_PRELOAD");
	const char *vps = NULL;
	int stats = 0, i;
	char *pre;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--stats")) {
			stats = 1;
		} else if (!strcmp(a, "-n") || !strcmp(a, "--vps")) {
			char *end;
			long v;

			if (i + 1 >= argc)
				return bad("%s needs a number", a);
			vps = argv[++i];
			errno = 0;
			v = strtol(vps, &end, 10);
			if (errno || end == vps || *end || v < 1 || v > 256)
				return bad("-n %s: the number of VPs must be 1 to 256", vps);
		} else if (a[0] == '-') {
			return bad("unknown option %s", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		return bad("%s", "no program to run");
	if (!lib || !*lib)
		lib = SA_PRELOAD_LIB;
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "sa-run: %s: %s\n", lib, strerror(errno));
		return 127;
	}
	pre = preload_value(lib);
	if (!pre || setenv("LD_PRELOAD", pre, 1) ||
	    (vps && setenv("SA_VPS", vps, 1)) ||
	    (stats && setenv("SA_STATS", "1", 1))) {
		fprintf(stderr, "sa-run: %s\n", strerror(errno ? errno : ENOMEM));
		return 127;
	}
	execvp(argv[i], &argv[i]);
	fprintf(stderr, "sa-run: %s: %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
