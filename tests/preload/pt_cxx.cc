// pt_cxx.cc - C++ std::thread, std::mutex, std::condition_variable,
// std::call_once, thread_local with destructors and exceptions in threads
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static std::atomic<int> failures{0};
#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c) && failures.fetch_add(1) < 10)                        \
			std::fprintf(stderr, "%s:%d: check failed: %s\n",      \
				     __FILE__, __LINE__, #c);                  \
	} while (0)

static std::atomic<int> dtors{0};

struct PerThread {
	std::string name = "fresh";
	~PerThread() { dtors++; }
};
static thread_local PerThread per_thread;

static std::once_flag once;
static std::atomic<int> once_runs{0};

int main()
{
	const int n = 32;
	std::mutex m;
	std::condition_variable cv;
	long shared = 0;
	int turn = 0;
	std::vector<std::thread> ts;

	for (int i = 0; i < n; i++) {
		ts.emplace_back([&, i] {
			std::call_once(once, [] { once_runs++; });
			CHECK(per_thread.name == "fresh");
			per_thread.name = "thread " + std::to_string(i);
			// Exceptions unwind through the loader's lock and the
			// uthread's own stack.
			try {
				throw std::runtime_error("boom " + std::to_string(i));
			} catch (const std::runtime_error &e) {
				CHECK(std::string(e.what()) == "boom " + std::to_string(i));
			}
			for (int k = 0; k < 1000; k++) {
				std::lock_guard<std::mutex> g(m);
				shared++;
			}
			// Take turns in order: a condvar round robin.
			std::unique_lock<std::mutex> lk(m);
			cv.wait(lk, [&] { return turn == i; });
			turn++;
			cv.notify_all();
			lk.unlock();
			std::this_thread::yield();
			CHECK(per_thread.name == "thread " + std::to_string(i));
		});
	}
	for (auto &t : ts)
		t.join();
	CHECK(shared == 1000L * n);
	CHECK(turn == n);
	CHECK(once_runs == 1);
	CHECK(dtors == n);
	std::thread::id main_id = std::this_thread::get_id();
	std::thread other([&] { CHECK(std::this_thread::get_id() != main_id); });
	other.join();
	std::printf("pt_cxx: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
