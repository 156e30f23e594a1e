/* micro.go - the Go peer of bench/micro.c: goroutines, sync and channels */

// Same benchmarks, names, calibration and output as bench/micro.c (read its
// header comment), mapped onto Go:
//
//	create-join        go f() + sync.WaitGroup.Wait
//	yield              runtime.Gosched, two goroutines
//	mutex-*            sync.Mutex
//	cond-pingpong-*    one sync.Mutex, one sync.Cond per side
//	sem-pingpong-*     two channels of capacity 1 (send = post, receive = wait)
//	skynet-*           each node makes a channel; its 10 children send on it
//
// The processor count of a benchmark is GOMAXPROCS.  One process runs one
// benchmark:  bench-go-micro [-json] [-reps N] [-time-ms MS] BENCH
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func fail(bench, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bench-go-micro: %s: %s\n", bench, fmt.Sprintf(format, args...))
	os.Exit(2)
}

// runWorkers starts n goroutines running fn, waits until all are ready,
// starts the clock, releases them and waits for them to end.
func runWorkers(n int, fn func(id int)) time.Duration {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func(id int) {
			ready.Done()
			<-start
			fn(id)
			done.Done()
		}(i)
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	return time.Since(t0)
}

func runCreateJoin(n uint64) time.Duration {
	t0 := time.Now()
	for i := uint64(0); i < n; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	return time.Since(t0)
}

func runYield(n uint64) time.Duration {
	return runWorkers(2, func(int) {
		for i := uint64(0); i < n/2; i++ {
			runtime.Gosched()
		}
	})
}

var sink uint64

func runMutexUncontended(n uint64) time.Duration {
	var m sync.Mutex
	counter := uint64(0)
	t0 := time.Now()
	for i := uint64(0); i < n; i++ {
		m.Lock()
		counter++
		m.Unlock()
	}
	d := time.Since(t0)
	if counter != n {
		fail("mutex-uncontended", "counter %d, expected %d", counter, n)
	}
	atomic.AddUint64(&sink, counter)
	return d
}

const contendedThreads = 2

func runMutexContended(n uint64) time.Duration {
	var m sync.Mutex
	counter := uint64(0)
	per := n / contendedThreads
	d := runWorkers(contendedThreads, func(int) {
		for i := uint64(0); i < per; i++ {
			m.Lock()
			counter++
			m.Unlock()
		}
	})
	if counter != per*contendedThreads {
		fail("mutex-contended", "counter %d, expected %d", counter, per*contendedThreads)
	}
	return d
}

func runCondPingpong(n uint64) time.Duration {
	var m sync.Mutex
	c := [2]*sync.Cond{sync.NewCond(&m), sync.NewCond(&m)}
	turn := 0
	var done [2]uint64
	d := runWorkers(2, func(me int) {
		m.Lock()
		for i := uint64(0); i < n; i++ {
			for turn != me {
				c[me].Wait()
			}
			turn = 1 - me
			done[me]++
			c[1-me].Signal()
		}
		m.Unlock()
	})
	if done[0] != n || done[1] != n {
		fail("cond-pingpong", "turns %d+%d, expected %d each", done[0], done[1], n)
	}
	return d
}

func runSemPingpong(n uint64) time.Duration {
	s := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	d := runWorkers(2, func(me int) {
		for i := uint64(0); i < n; i++ {
			if me == 0 {
				s[1] <- struct{}{}
				<-s[0]
			} else {
				<-s[1]
				s[0] <- struct{}{}
			}
		}
	})
	return d
}

func skynet(out chan<- uint64, num, size uint64) {
	if size == 1 {
		out <- num
		return
	}
	c := make(chan uint64, 10)
	step := size / 10
	for i := uint64(0); i < 10; i++ {
		go skynet(c, num+i*step, step)
	}
	sum := uint64(0)
	for i := 0; i < 10; i++ {
		sum += <-c
	}
	out <- sum
}

func runSkynet(leaves uint64) time.Duration {
	t0 := time.Now()
	c := make(chan uint64, 1)
	go skynet(c, 0, leaves)
	sum := <-c
	d := time.Since(t0)
	if sum != leaves*(leaves-1)/2 {
		fail("skynet", "sum %d, expected %d", sum, leaves*(leaves-1)/2)
	}
	return d
}

type bench struct {
	name   string
	what   string
	procs  int
	run    func(uint64) time.Duration
	leaves uint64
	align  uint64
}

var benches = []bench{
	{"create-join", "go+wait", 2, runCreateJoin, 0, 1},
	{"create-join-1cpu", "go+wait", 1, runCreateJoin, 0, 1},
	{"yield", "Gosched", 1, runYield, 0, 2},
	{"mutex-uncontended", "Lock+Unlock", 2, runMutexUncontended, 0, 1},
	{"mutex-contended", "critical section, 2 goroutines", 2, runMutexContended, 0, contendedThreads},
	{"cond-pingpong-1cpu", "round trip", 1, runCondPingpong, 0, 1},
	{"cond-pingpong-2cpu", "round trip", 2, runCondPingpong, 0, 1},
	{"sem-pingpong-1cpu", "channel round trip", 1, runSemPingpong, 0, 1},
	{"sem-pingpong-2cpu", "channel round trip", 2, runSemPingpong, 0, 1},
	{"skynet-10k", "10,000 leaves", 2, runSkynet, 10000, 0},
	{"skynet-1m", "1,000,000 leaves", 2, runSkynet, 1000000, 0},
}

func calibrate(b *bench, target time.Duration) uint64 {
	n := uint64(16)
	var d time.Duration
	for {
		d = b.run(n)
		if d >= 10*time.Millisecond || n >= 1<<40 {
			break
		}
		if d < time.Millisecond {
			n *= 8
		} else {
			n *= 2
		}
	}
	if d <= 0 {
		d = 1
	}
	n = uint64(float64(n) * float64(target) / float64(d))
	n = (n + b.align - 1) / b.align * b.align
	if n == 0 {
		n = b.align
	}
	return n
}

func main() {
	jsonOut := flag.Bool("json", false, "print one JSON object")
	reps := flag.Int("reps", 5, "timed repetitions")
	timeMs := flag.Int("time-ms", 50, "target time of one repetition")
	list := flag.Bool("list", false, "list the benchmarks")
	flag.Parse()
	if *list {
		for _, b := range benches {
			fmt.Println(b.name)
		}
		return
	}
	if flag.NArg() != 1 || *reps < 1 || *timeMs < 1 {
		fmt.Fprintln(os.Stderr, "usage: bench-go-micro [-json] [-reps N] [-time-ms MS] BENCH | -list")
		os.Exit(1)
	}
	var b *bench
	for i := range benches {
		if benches[i].name == flag.Arg(0) {
			b = &benches[i]
		}
	}
	if b == nil {
		fmt.Fprintf(os.Stderr, "unknown benchmark %s\n", flag.Arg(0))
		os.Exit(1)
	}
	runtime.GOMAXPROCS(b.procs)

	var n uint64
	var scale float64
	r := *reps
	if b.leaves != 0 {
		if b.leaves >= 1000000 && r > 3 {
			r = 3
		}
		n = b.leaves
		b.run(n) // warm-up
		scale = 1e-9
	} else {
		n = calibrate(b, time.Duration(*timeMs)*time.Millisecond)
		scale = 1 / float64(n)
	}
	samples := make([]float64, r)
	for i := range samples {
		samples[i] = float64(b.run(n).Nanoseconds()) * scale
	}
	sort.Float64s(samples)
	med := samples[r/2]
	metric := "ns_per_op"
	prec := 2
	if b.leaves != 0 {
		metric = "seconds"
		prec = 4
	}
	if *jsonOut {
		fmt.Printf("{\"bench\": \"%s\", \"impl\": \"go\", \"metric\": \"%s\", \"value\": %.*f}\n",
			b.name, metric, prec, med)
	} else if b.leaves != 0 {
		fmt.Printf("%-20s %-6s %10.4f s       (%s on GOMAXPROCS=%d; median of %d, min %.4f max %.4f)\n",
			b.name, "go", med, b.what, b.procs, r, samples[0], samples[r-1])
	} else {
		fmt.Printf("%-20s %-6s %10.1f ns/op   (%s on GOMAXPROCS=%d; median of %d x %d ops, min %.1f max %.1f)\n",
			b.name, "go", med, b.what, b.procs, r, n, samples[0], samples[r-1])
	}
}
