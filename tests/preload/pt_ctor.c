/* pt_ctor.c - checks what pt_early.so's constructor did before main, then
 * uses the same kind of objects from threads */
#include <dlfcn.h>

#include "pt.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++) {
		PT_OK(pthread_mutex_lock(&m));
		counter++;
		PT_OK(pthread_mutex_unlock(&m));
	}
	return NULL;
}

int main(void)
{
	int (*early_ok)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "pt_early_ok");
	pthread_t t[8];

	PT_CHECK(early_ok != NULL);
	if (!early_ok) {
		fprintf(stderr, "pt_early.so is not loaded\n");
		return 1;
	}
	PT_CHECK(early_ok() == 1);
	for (int i = 0; i < 8; i++)
		PT_OK(pthread_create(&t[i], NULL, worker, NULL));
	for (int i = 0; i < 8; i++)
		PT_OK(pthread_join(t[i], NULL));
	PT_CHECK(counter == 8000);
	printf("pt_ctor: %s\n", pt_exit_status() ? "FAILED" : "ok");
	return pt_exit_status();
}
