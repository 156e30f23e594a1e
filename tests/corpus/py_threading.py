# py_threading.py - a Python 3 threading workload: threads, Lock, Queue, Condition
#
# Prints a summary that depends only on the work done, never on timing, so
# that its output under NPTL and under libsa-preload.so can be compared.

import queue
import threading

N_PRODUCERS = 8
N_CONSUMERS = 8
ITEMS = 2000


def producers_consumers():
    q = queue.Queue(maxsize=64)
    total = 0
    lock = threading.Lock()

    def produce(base):
        for i in range(ITEMS):
            q.put(base * ITEMS + i)

    def consume():
        nonlocal total
        while True:
            item = q.get()
            if item is None:
                q.task_done()
                return
            with lock:
                total += item
            q.task_done()

    cons = [threading.Thread(target=consume) for _ in range(N_CONSUMERS)]
    prods = [threading.Thread(target=produce, args=(p,)) for p in range(N_PRODUCERS)]
    for t in cons + prods:
        t.start()
    for t in prods:
        t.join()
    for _ in cons:
        q.put(None)
    q.join()
    for t in cons:
        t.join()
    n = N_PRODUCERS * ITEMS
    return total, n * (n - 1) // 2


def condition_pingpong(rounds=2000):
    cond = threading.Condition()
    state = {"turn": 0, "count": 0}

    def player(me):
        for _ in range(rounds):
            with cond:
                while state["turn"] != me:
                    cond.wait()
                state["count"] += 1
                state["turn"] = 1 - me
                cond.notify_all()

    ts = [threading.Thread(target=player, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return state["count"]


def counters(nthreads=32, iters=5000):
    lock = threading.RLock()
    value = [0]
    local = threading.local()
    seen = []

    def work(i):
        local.mine = i
        for _ in range(iters):
            with lock:
                value[0] += 1
        with lock:
            seen.append(local.mine == i)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return value[0], all(seen) and len(seen) == nthreads


def events_and_barriers(n=16):
    barrier = threading.Barrier(n)
    ev = threading.Event()
    sem = threading.BoundedSemaphore(4)
    passed = []
    plock = threading.Lock()

    def work(i):
        barrier.wait()
        ev.wait()
        with sem:
            with plock:
                passed.append(i)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    ev.set()
    for t in ts:
        t.join()
    return sorted(passed) == list(range(n))


got, want = producers_consumers()
print("queue sum", got, "ok" if got == want else "WRONG")
print("pingpong", condition_pingpong())
print("counters", *counters())
print("barrier/event/semaphore", events_and_barriers())
print("threads alive at end", threading.active_count())
