// cxx_workload.cc - a C++ program on std::thread, std::mutex,
// std::condition_variable, std::async, futures and exceptions
//
// Built with the test suite but linked against the C and C++ libraries
// only.  It prints results that depend on the work alone, so its output
// under NPTL and under libsa-preload.so must be the same.

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// A bounded queue on a mutex and two condition variables.
class Channel {
public:
	explicit Channel(size_t cap) : cap_(cap) {}
	void put(long v)
	{
		std::unique_lock<std::mutex> l(m_);
		not_full_.wait(l, [&] { return q_.size() < cap_; });
		q_.push_back(v);
		not_empty_.notify_one();
	}
	bool get(long &v)
	{
		std::unique_lock<std::mutex> l(m_);
		not_empty_.wait(l, [&] { return !q_.empty() || closed_; });
		if (q_.empty())
			return false;
		v = q_.front();
		q_.pop_front();
		not_full_.notify_one();
		return true;
	}
	void close()
	{
		std::lock_guard<std::mutex> l(m_);
		closed_ = true;
		not_empty_.notify_all();
	}

private:
	std::mutex m_;
	std::condition_variable not_full_, not_empty_;
	std::deque<long> q_;
	size_t cap_;
	bool closed_ = false;
};

long pipeline()
{
	Channel ch(16);
	std::atomic<long> sum{0};
	std::vector<std::thread> consumers, producers;

	for (int i = 0; i < 8; i++)
		consumers.emplace_back([&] {
			long v, mine = 0;
			while (ch.get(v))
				mine += v;
			sum += mine;
		});
	for (int p = 0; p < 8; p++)
		producers.emplace_back([&ch, p] {
			for (long i = 0; i < 5000; i++)
				ch.put(p * 5000 + i);
		});
	for (auto &t : producers)
		t.join();
	ch.close();
	for (auto &t : consumers)
		t.join();
	return sum;
}

// Exceptions thrown on many threads at once, caught there and across futures.
int exceptions()
{
	std::vector<std::future<int>> fs;
	int caught = 0;

	for (int i = 0; i < 64; i++)
		fs.push_back(std::async(std::launch::async, [i] {
			int local = 0;
			for (int k = 0; k < 200; k++) {
				try {
					if ((i + k) % 3 == 0)
						throw std::runtime_error("odd " + std::to_string(k));
					local++;
				} catch (const std::runtime_error &e) {
					local += e.what()[0] == 'o' ? 2 : 1000;
				}
			}
			if (i % 8 == 0)
				throw std::out_of_range("thread " + std::to_string(i));
			return local;
		}));
	long total = 0;
	for (auto &f : fs) {
		try {
			total += f.get();
		} catch (const std::out_of_range &) {
			caught++;
		}
	}
	std::printf("exception totals %ld caught %d\n", total, caught);
	return caught;
}

// A recursive mutex, call_once and thread_local with a destructor.
std::atomic<int> dtors{0};
struct Tracker {
	int value = 0;
	~Tracker() { dtors++; }
};
thread_local Tracker tracker;

void locals_and_once()
{
	std::recursive_mutex rm;
	std::once_flag once;
	std::atomic<int> once_runs{0};
	std::map<int, int> seen;
	std::vector<std::thread> ts;

	for (int i = 0; i < 32; i++)
		ts.emplace_back([&, i] {
			std::call_once(once, [&] { once_runs++; });
			tracker.value = i;
			for (int k = 0; k < 1000; k++) {
				std::lock_guard<std::recursive_mutex> a(rm);
				std::lock_guard<std::recursive_mutex> b(rm);
				seen[i]++;
			}
			std::this_thread::yield();
			std::this_thread::sleep_for(std::chrono::microseconds(100));
			if (tracker.value != i)
				seen[-1]++;
		});
	for (auto &t : ts)
		t.join();
	std::printf("once %d threads %zu each %d tls-mixups %d dtors %d\n", once_runs.load(),
		    seen.count(-1) ? seen.size() - 1 : seen.size(), seen[0],
		    seen.count(-1) ? seen[-1] : 0, dtors.load());
}

// std::async deferred and async, a packaged_task, a promise set across threads.
void futures()
{
	auto a = std::async(std::launch::async, [] {
		std::vector<int> v(100000);
		std::iota(v.begin(), v.end(), 1);
		return std::accumulate(v.begin(), v.end(), 0L);
	});
	auto d = std::async(std::launch::deferred, [] { return 42; });
	std::packaged_task<std::string(int)> task([](int n) { return std::string(n, 'x'); });
	auto tf = task.get_future();
	std::thread tt(std::move(task), 5);
	std::promise<int> p;
	auto pf = p.get_future();
	std::thread pt([&p] {
		try {
			throw std::logic_error("from a thread");
		} catch (...) {
			p.set_exception(std::current_exception());
		}
	});
	std::string err;
	try {
		pf.get();
	} catch (const std::logic_error &e) {
		err = e.what();
	}
	tt.join();
	pt.join();
	std::printf("futures %ld %d %s '%s'\n", a.get(), d.get(), tf.get().c_str(), err.c_str());
}

} // namespace

int main()
{
	long n = 8 * 5000;

	std::printf("pipeline %ld (want %ld)\n", pipeline(), n * (n - 1) / 2);
	exceptions();
	locals_and_once();
	futures();
	return 0;
}
