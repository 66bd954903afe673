// savina.go: the in-process workloads of bench/ written the Go way
// (goroutines and channels), so that troupe can be compared with Go on the
// same machine in the same run. Go is the peer that sets most of the core
// runtime's targets; measuring it beside troupe turns "faster than Go on the
// machine the targets came from" into a ratio that holds on any machine.
//
//	go_savina WORKLOAD N
//
// prints one line in bench.h's format:
//
//	workload=go_<name> n=<N> secs=<s> rate=<per second> rss_kb=<peak>
//
// Workloads (as in bench/mailbox.c, pingpong.c, threadring.c, forkjoin.c,
// idle_actors.c):
//
//	mailbox_1p, mailbox_4p  1 or 4 producers send N 16-byte messages in all
//	                        into one consumer's buffered channel (1024 deep,
//	                        troupe's window)
//	pingpong                N round trips between two goroutines
//	threadring              a token passed N hops around 503 goroutines
//	fj_create               N goroutines, each started and sent one message
//	fj_throughput           N messages sent round-robin to 60 goroutines
//	idle                    N goroutines alive at once, each waiting, then
//	                        all told to end: peak memory
//
// GOMAXPROCS is Go's default, one thread per core, as troupe's workers.
// Not part of the build or the tests: bench/run builds it with `go build`
// when Go is installed (Debian: golang-go) and asked for go_* workloads.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type payload struct{ producer, seq uint64 }

func mailbox(n, producers int) {
	ch := make(chan payload, 1024)
	per := n / producers
	for p := 0; p < producers; p++ {
		go func(id uint64) {
			for i := per; i > 0; i-- {
				ch <- payload{id, uint64(i)}
			}
		}(uint64(p))
	}
	var sum uint64
	for i := 0; i < per*producers; i++ {
		sum += (<-ch).seq
	}
	if sum == 0 {
		os.Exit(1)
	}
}

func pingpong(n int) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	close(ping)
}

func threadring(n int) {
	const actors = 503
	var chans [actors]chan int
	for i := range chans {
		chans[i] = make(chan int, 1)
	}
	done := make(chan struct{})
	for i := 0; i < actors; i++ {
		go func(in, out chan int) {
			for hops := range in {
				if hops == 0 {
					close(done)
					return
				}
				out <- hops - 1
			}
		}(chans[i], chans[(i+1)%actors])
	}
	chans[0] <- n
	<-done
}

func fjCreate(n int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		ch := make(chan int, 1)
		go func() {
			<-ch
			wg.Done()
		}()
		ch <- i
	}
	wg.Wait()
}

func fjThroughput(n int) {
	const actors = 60
	var wg sync.WaitGroup
	var chans [actors]chan int
	per := n / actors
	wg.Add(actors)
	for i := range chans {
		chans[i] = make(chan int, 1024)
		go func(in chan int) {
			for got := 0; got < per; got++ {
				<-in
			}
			wg.Done()
		}(chans[i])
	}
	for i := 0; i < per*actors; i++ {
		chans[i%actors] <- i
	}
	wg.Wait()
}

func idle(n int) {
	var up, down sync.WaitGroup
	stop := make([]chan struct{}, n)
	up.Add(n)
	down.Add(n)
	for i := range stop {
		stop[i] = make(chan struct{})
		go func(c chan struct{}) {
			up.Done()
			<-c
			down.Done()
		}(stop[i])
	}
	up.Wait() // all alive and waiting at once
	for _, c := range stop {
		close(c)
	}
	down.Wait()
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go_savina WORKLOAD N")
		os.Exit(2)
	}
	name := os.Args[1]
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "N must be a positive number")
		os.Exit(2)
	}
	workloads := map[string]func(int){
		"mailbox_1p":    func(n int) { mailbox(n, 1) },
		"mailbox_4p":    func(n int) { mailbox(n, 4) },
		"pingpong":      pingpong,
		"threadring":    threadring,
		"fj_create":     fjCreate,
		"fj_throughput": fjThroughput,
		"idle":          idle,
	}
	run, ok := workloads[name]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown workload", name)
		os.Exit(2)
	}
	t0 := time.Now()
	run(n)
	secs := time.Since(t0).Seconds()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("workload=go_%s n=%d secs=%.4f rate=%.0f rss_kb=%d\n", name, n, secs,
		float64(n)/secs, ru.Maxrss)
}
