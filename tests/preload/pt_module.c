/* pt_module.c - a module pt_dlopen loads: its constructor makes a thread,
 * it has TLS of its own (dynamic TLS) and it makes threads on request */
#include "pt.h"

static __thread int module_tls = 99;
static int ctor_thread_ran;

static void *ctor_thread(void *arg)
{
	(void)arg;
	ctor_thread_ran = module_tls == 99;
	return NULL;
}

__attribute__((constructor)) static void module_init(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, ctor_thread, NULL) == 0)
		pthread_join(t, NULL);
}

int module_ctor_thread_ran(void);
int module_ctor_thread_ran(void)
{
	return ctor_thread_ran;
}

static void *worker(void *arg)
{
	int id = (int)(long)arg;

	if (module_tls != 99)
		return (void *)1;
	module_tls = id;
	sched_yield();
	return module_tls == id ? NULL : (void *)1;
}

/* module_run - make @n threads that each use the module's TLS; the count
 * of those that saw something wrong. */
int module_run(int n);
int module_run(int n)
{
	pthread_t t[64];
	int bad = 0;

	if (n > 64)
		n = 64;
	for (long i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(i + 1)))
			bad++;
	for (int i = 0; i < n; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad += r != NULL;
	}
	return bad;
}
