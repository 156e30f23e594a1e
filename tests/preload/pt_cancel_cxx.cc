// pt_cancel_cxx.cc - C++ under pthread_exit() and pthread_cancel(): the
// forced unwinding runs destructors, and catch (...) must rethrow it
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <pthread.h>
#include <unistd.h>

static std::atomic<int> dtors{0}, caught{0}, failures{0};
static int fds[2];

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			failures++;                                                \
			std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				     __LINE__, #c);                                \
		}                                                                  \
	} while (0)

struct Guard {
	~Guard() { dtors++; }
};

static void *exiter(void *)
{
	Guard g;
	{
		Guard inner;
		pthread_exit(reinterpret_cast<void *>(5));
	}
	return nullptr;
}

static void *reader(void *)
{
	Guard g;
	char c;

	try {
		Guard inner;
		for (;;)
			if (read(fds[0], &c, 1) < 0 && errno != EINTR)
				break;
	} catch (...) {
		caught++; // the forced unwind: must be rethrown
		throw;
	}
	return nullptr;
}

int main()
{
	pthread_t t;
	void *r;

	alarm(60);
	CHECK(pthread_create(&t, nullptr, exiter, nullptr) == 0);
	CHECK(pthread_join(t, &r) == 0);
	CHECK(r == reinterpret_cast<void *>(5));
	CHECK(dtors == 2);

	CHECK(pipe(fds) == 0);
	CHECK(pthread_create(&t, nullptr, reader, nullptr) == 0);
	usleep(20000);
	CHECK(pthread_cancel(t) == 0);
	CHECK(pthread_join(t, &r) == 0);
	CHECK(r == PTHREAD_CANCELED);
	CHECK(dtors == 4);
	CHECK(caught == 1);
	std::printf("pt_cancel_cxx: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
