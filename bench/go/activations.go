/* activations.go - the Go peer of bench/activations.c: a CPU hog, pipe I/O, a system call */

// Same benchmarks, names, sizes and output as bench/activations.c (read its
// header comment), mapped onto Go:
//
//	hog-pingpong    GOMAXPROCS=1; one sync.Mutex, one sync.Cond per side;
//	                the hog is a goroutine in a loop without calls that
//	                yield (Go preempts it asynchronously, sysmon, ~10 ms)
//	io-overlap      GOMAXPROCS=2; pipes from os.Pipe (their reads and
//	                writes park the goroutine on the netpoller)
//	hidden-syscall  GOMAXPROCS=1; syscall.Syscall(SYS_NANOSLEEP): Go's
//	                runtime marks the thread as in a system call and sysmon
//	                hands its P to another thread when it stays there
//
// One process runs one benchmark:
// bench-go-activations [-json] [-reps N] [-time-ms MS] BENCH
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

var jsonOut bool

func fail(bench, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bench-go-activations: %s: %s\n", bench, fmt.Sprintf(format, args...))
	os.Exit(2)
}

func emit(bench, metric string, value float64, prec int, extra string) {
	if jsonOut {
		fmt.Printf("{\"bench\": \"%s\", \"impl\": \"go\", \"metric\": \"%s\", \"value\": %.*f%s}\n",
			bench, metric, prec, value, extra)
	} else {
		fmt.Printf("%-20s %-6s %12.*f %s%s\n", bench, "go", prec, value, metric, extra)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// spinUnit is activations.c's spin_unit: 1024 dependent LCG+xorshift steps.
func spinUnit(x uint64) uint64 {
	for i := 0; i < 1024; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

var spinSink uint64

// ---------------------------------------------------------------------------
// hog-pingpong

const hogSamplesMax = 16 << 20

// cpuNs is the CPU time of the calling thread (who = RUSAGE_THREAD) or of
// the process (syscall.RUSAGE_SELF).
func cpuNs(who int) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		fail("hog-pingpong", "getrusage: %v", err)
	}
	return syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)
}

const rusageThread = 1 // RUSAGE_THREAD

// hogRateAlone is the hog loop's rate alone, in units per ns of this
// thread's CPU time (the goroutine is locked to its thread meanwhile).
func hogRateAlone() float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x, units := uint64(1), uint64(0)
	t0 := cpuNs(rusageThread)
	var d int64
	for d < 20000000 {
		for i := 0; i < 16; i++ {
			x = spinUnit(x)
		}
		units += 16
		d = cpuNs(rusageThread) - t0
	}
	atomic.StoreUint64(&spinSink, x)
	return float64(units) / float64(d)
}

type hogResult struct {
	med, p99, max, share float64
	n                    int
}

func runHogOnce(runFor time.Duration, rate float64, lat []uint32) hogResult {
	var m sync.Mutex
	c := [2]*sync.Cond{sync.NewCond(&m), sync.NewCond(&m)}
	turn, stop := 0, false
	var hogStop int32
	var hogUnits uint64
	var turns [2]int
	nlat := 0
	cpu0 := cpuNs(syscall.RUSAGE_SELF)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(3)
	done.Add(3)
	go func() { // the hog
		ready.Done()
		<-start
		x, units := uint64(1), uint64(0)
		for atomic.LoadInt32(&hogStop) == 0 {
			x = spinUnit(x)
			units++
		}
		atomic.StoreUint64(&spinSink, x)
		hogUnits = units
		done.Done()
	}()
	go func() { // side 0: times every round trip
		ready.Done()
		<-start
		m.Lock()
		t0 := time.Now()
		begin := t0
		for {
			if t0.Sub(begin) >= runFor || nlat == hogSamplesMax {
				stop = true
				turn = 1
				c[1].Signal()
				break
			}
			turn = 1
			turns[0]++
			c[1].Signal()
			for turn != 0 {
				c[0].Wait()
			}
			t1 := time.Now()
			d := t1.Sub(t0).Nanoseconds()
			if d > 1<<32-1 {
				d = 1<<32 - 1
			}
			lat[nlat] = uint32(d)
			nlat++
			t0 = t1
		}
		m.Unlock()
		atomic.StoreInt32(&hogStop, 1)
		done.Done()
	}()
	go func() { // side 1
		ready.Done()
		<-start
		m.Lock()
		for {
			for turn != 1 {
				c[1].Wait()
			}
			if stop {
				break
			}
			turn = 0
			turns[1]++
			c[0].Signal()
		}
		m.Unlock()
		done.Done()
	}()
	ready.Wait()
	close(start)
	done.Wait()
	cpu1 := cpuNs(syscall.RUSAGE_SELF)
	if nlat == 0 || turns[0] != nlat || turns[1] != nlat {
		fail("hog-pingpong", "round trips %d+%d, expected %d each", turns[0], turns[1], nlat)
	}
	s := lat[:nlat]
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return hogResult{float64(s[nlat/2]), float64(s[nlat*99/100]), float64(s[nlat-1]),
		float64(hogUnits) / rate / float64(cpu1-cpu0), nlat}
}

func benchHogPingpong(reps int, timeMs int) {
	lat := make([]uint32, hogSamplesMax)
	rate := hogRateAlone()
	var med, p99, share []float64
	max, n := 0.0, 0
	for i := 0; i < reps; i++ {
		r := runHogOnce(4*time.Duration(timeMs)*time.Millisecond, rate, lat)
		med = append(med, r.med)
		p99 = append(p99, r.p99)
		share = append(share, r.share)
		if r.max > max {
			max = r.max
		}
		n += r.n
	}
	emit("hog-pingpong", "ns", median(med), 1, fmt.Sprintf(", \"max_ns\": %.0f, \"round_trips\": %d", max, n))
	emit("hog-pingpong-p99", "ns", median(p99), 1, "")
	emit("hog-pingpong-share", "percent", 100*median(share), 1, "")
}

// ---------------------------------------------------------------------------
// io-overlap

const (
	ioPairs        = 64
	ioRounds       = 200
	ioMsg          = 64
	ioCompute      = 2
	ioComputeUnits = 60000
)

func ioFill(msg []byte, idx, round int) {
	tag := uint64(idx)<<32 | uint64(round)
	for i := 0; i < 8; i++ {
		msg[i] = byte(tag >> (8 * i))
	}
	for i := 8; i < ioMsg; i++ {
		msg[i] = byte(idx + round + i)
	}
}

func ioWrite(f *os.File, b []byte) {
	if _, err := f.Write(b); err != nil {
		fail("io-overlap", "write: %v", err)
	}
}

func ioRead(f *os.File, b []byte) {
	for got := 0; got < len(b); {
		n, err := f.Read(b[got:])
		if err != nil {
			fail("io-overlap", "read: %v", err)
		}
		got += n
	}
}

var computeWant uint64

// runIOOnce returns the time until all is done, the last pair and the last
// compute goroutine.
func runIOOnce() (all, io, cpu time.Duration) {
	var done sync.WaitGroup
	start := make(chan struct{})
	var ioEnd [ioPairs]time.Time
	var cpuEnd [ioCompute]time.Time
	var out [ioCompute]uint64
	var files []*os.File
	for p := 0; p < ioPairs; p++ {
		reqR, reqW, err1 := os.Pipe()
		rspR, rspW, err2 := os.Pipe()
		if err1 != nil || err2 != nil {
			fail("io-overlap", "pipe: %v %v", err1, err2)
		}
		files = append(files, reqR, reqW, rspR, rspW)
		done.Add(2)
		go func(idx int) { // client
			outb, in := make([]byte, ioMsg), make([]byte, ioMsg)
			<-start
			for r := 0; r < ioRounds; r++ {
				ioFill(outb, idx, r)
				ioWrite(reqW, outb)
				ioRead(rspR, in)
				outb[ioMsg-1] ^= 0xff
				if !bytes.Equal(in, outb) {
					fail("io-overlap", "wrong response of pair %d round %d", idx, r)
				}
			}
			ioEnd[idx] = time.Now()
			done.Done()
		}(p)
		go func() { // server
			buf := make([]byte, ioMsg)
			<-start
			for r := 0; r < ioRounds; r++ {
				ioRead(reqR, buf)
				buf[ioMsg-1] ^= 0xff
				ioWrite(rspW, buf)
			}
			done.Done()
		}()
	}
	for i := 0; i < ioCompute; i++ {
		done.Add(1)
		go func(idx int) {
			<-start
			x := uint64(1)
			for u := 0; u < ioComputeUnits; u++ {
				x = spinUnit(x)
			}
			out[idx] = x
			cpuEnd[idx] = time.Now()
			done.Done()
		}(i)
	}
	t0 := time.Now()
	close(start)
	done.Wait()
	all = time.Since(t0)
	for p := 0; p < ioPairs; p++ {
		if d := ioEnd[p].Sub(t0); d > io {
			io = d
		}
	}
	for i := 0; i < ioCompute; i++ {
		if computeWant != 0 && out[i] != computeWant {
			fail("io-overlap", "compute result %d, expected %d", out[i], computeWant)
		}
		computeWant = out[i]
		if d := cpuEnd[i].Sub(t0); d > cpu {
			cpu = d
		}
	}
	for _, f := range files {
		f.Close()
	}
	return
}

func benchIOOverlap(reps int) {
	runIOOnce() // warm-up
	var all, io, cpu []float64
	for i := 0; i < reps; i++ {
		a, b, c := runIOOnce()
		all = append(all, a.Seconds())
		io = append(io, b.Seconds())
		cpu = append(cpu, c.Seconds())
	}
	emit("io-overlap", "seconds", median(all), 4,
		fmt.Sprintf(", \"compute_done_s\": %.4f, \"pairs\": %d, \"rounds\": %d, \"compute_threads\": %d",
			median(cpu), ioPairs, ioRounds, ioCompute))
	emit("io-overlap-io", "seconds", median(io), 4, "")
}

// ---------------------------------------------------------------------------
// hidden-syscall

const hiddenSleep = 20 * time.Millisecond

func runHiddenOnce() (toOther, call time.Duration) {
	var waiting, entered int64
	var otherRan, returned time.Time
	var enteredAt time.Time
	var done sync.WaitGroup
	done.Add(2)
	go func() { // the waiter: runnable, yielding, until the sleeper is in
		atomic.StoreInt64(&waiting, 1)
		for atomic.LoadInt64(&entered) == 0 {
			runtime.Gosched()
		}
		otherRan = time.Now()
		done.Done()
	}()
	go func() { // the sleeper
		for atomic.LoadInt64(&waiting) == 0 {
			runtime.Gosched()
		}
		ts := syscall.NsecToTimespec(hiddenSleep.Nanoseconds())
		enteredAt = time.Now()
		atomic.StoreInt64(&entered, 1)
		_, _, e := syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		if e != 0 {
			fail("hidden-syscall", "nanosleep: %v", e)
		}
		returned = time.Now()
		done.Done()
	}()
	done.Wait()
	if returned.Sub(enteredAt) < hiddenSleep {
		fail("hidden-syscall", "nanosleep took %v, expected %v", returned.Sub(enteredAt), hiddenSleep)
	}
	return otherRan.Sub(enteredAt), returned.Sub(enteredAt)
}

func benchHiddenSyscall(reps int) {
	runHiddenOnce() // warm-up
	var other, call []float64
	for i := 0; i < reps; i++ {
		a, b := runHiddenOnce()
		other = append(other, float64(a.Nanoseconds())*1e-6)
		call = append(call, float64(b.Nanoseconds())*1e-6)
	}
	emit("hidden-syscall", "milliseconds", median(other), 3,
		fmt.Sprintf(", \"syscall_ms\": %.3f", median(call)))
}

func main() {
	flag.BoolVar(&jsonOut, "json", false, "print JSON objects")
	reps := flag.Int("reps", 5, "timed repetitions")
	timeMs := flag.Int("time-ms", 50, "a hog-pingpong run lasts 4x this")
	list := flag.Bool("list", false, "list the benchmarks")
	flag.Parse()
	names := []string{"hog-pingpong", "io-overlap", "hidden-syscall"}
	procs := []int{1, 2, 1}
	if *list {
		for _, n := range names {
			fmt.Println(n)
		}
		return
	}
	if flag.NArg() != 1 || *reps < 1 || *timeMs < 1 {
		fmt.Fprintln(os.Stderr, "usage: bench-go-activations [-json] [-reps N] [-time-ms MS] BENCH | -list")
		os.Exit(1)
	}
	which := -1
	for i, n := range names {
		if n == flag.Arg(0) {
			which = i
		}
	}
	if which < 0 {
		fmt.Fprintf(os.Stderr, "unknown benchmark %s\n", flag.Arg(0))
		os.Exit(1)
	}
	runtime.GOMAXPROCS(procs[which])
	switch which {
	case 0:
		benchHogPingpong(*reps, *timeMs)
	case 1:
		benchIOOverlap(*reps)
	case 2:
		benchHiddenSyscall(*reps)
	}
}
