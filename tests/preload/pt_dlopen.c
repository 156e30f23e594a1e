/* pt_dlopen.c - threads made by a dlopen'ed module, from its constructor and
 * from threads of the program, with the module's own TLS */
#include <dlfcn.h>

#include "pt.h"

static int (*run)(int);

static void *caller(void *arg)
{
	(void)arg;
	return (void *)(long)run(16);
}

int main(int argc, char **argv)
{
	void *h;
	int (*ctor_ran)(void);
	pthread_t t[4];

	if (argc != 2) {
		fprintf(stderr, "usage: pt_dlopen MODULE.so\n");
		return 2;
	}
	h = dlopen(argv[1], RTLD_NOW);
	PT_CHECK(h != NULL);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	run = (int (*)(int))dlsym(h, "module_run");
	ctor_ran = (int (*)(void))dlsym(h, "module_ctor_thread_ran");
	PT_CHECK(run && ctor_ran);
	if (!run || !ctor_ran)
		return 1;
	PT_CHECK(ctor_ran() == 1);
	PT_CHECK(run(32) == 0);
	for (int i = 0; i < 4; i++)
		PT_OK(pthread_create(&t[i], NULL, caller, NULL));
	for (int i = 0; i < 4; i++) {
		void *r;

		PT_OK(pthread_join(t[i], &r));
		PT_CHECK(r == NULL);
	}
	printf("pt_dlopen: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
