package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// dialChildCommand is the hidden subcommand the memory figure runs in a
// child process of the benchmark's own binary, so that the clients' memory
// is not counted with the server's.
const dialChildCommand = "__chat-dial-child"

// memResult is one side of the memory figure, per connection.
type memResult struct {
	name                    string
	heap, stack, goroutines float64
}

type memResults struct{ gateway, baseline memResult }

// benchMemory opens c.conns idle sockets from a child process, first to a
// fresh gateway over the persisted stack (connsPerUser sockets per user,
// each user to their own room), then to a bare upgrader, and reports how
// much the server process grew per socket.
func benchMemory(ctx context.Context, env *chatEnv, c chatConfig, s *chatStack) (memResults, error) {
	exe, err := os.Executable()
	if err != nil {
		return memResults{}, fmt.Errorf("find the benchmark's binary to run the clients: %w", err)
	}
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return memResults{}, err
	}
	defer os.RemoveAll(dir)

	users := (c.conns + connsPerUser - 1) / connsPerUser
	env.logf("memory: creating %d rooms", users)
	base, shutdown, err := env.serveGateway(s.deps)
	if err != nil {
		return memResults{}, err
	}
	targets := make([]string, users)
	err = parallel(users, 8, func(i int) error {
		user := fmt.Sprintf("idle-%d", i)
		info, err := s.svc.CreateRoom(ctx, user, "Idle")
		if err != nil {
			return err
		}
		tok, err := env.token(user)
		if err != nil {
			return err
		}
		targets[i] = base + strconv.FormatInt(info.ID, 10) + "/\t" + tok
		return nil
	})
	if err != nil {
		return memResults{}, err
	}
	if err := env.caughtUp(ctx, s); err != nil {
		return memResults{}, err
	}
	gwTargets := filepath.Join(dir, "gateway")
	if err := os.WriteFile(gwTargets, []byte(strings.Join(targets, "\n")), 0o600); err != nil {
		return memResults{}, err
	}
	// One connection first, so pools and caches the first socket fills are
	// not counted per connection.
	url, tok, _ := strings.Cut(targets[0], "\t")
	if err := warmOne(ctx, url, tok); err != nil {
		return memResults{}, err
	}
	var res memResults
	env.logf("memory: %d connections to the gateway", c.conns)
	if res.gateway, err = env.measureConns(ctx, exe, gwTargets, c.conns, shutdown); err != nil {
		return res, fmt.Errorf("gateway: %w", err)
	}
	res.gateway.name = "gateway"

	bare, err := env.newBareServer([]byte(`{"type":"history","messages":[],"version":0}`))
	if err != nil {
		return res, err
	}
	bareTargets := filepath.Join(dir, "baseline")
	if err := os.WriteFile(bareTargets, []byte(bare.url+"\t"), 0o600); err != nil {
		return res, err
	}
	if err := warmOne(ctx, bare.url, ""); err != nil {
		return res, err
	}
	env.logf("memory: %d connections to the bare upgrader", c.conns)
	if res.baseline, err = env.measureConns(ctx, exe, bareTargets, c.conns, bare.stop); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	res.baseline.name = "baseline (bare upgrader, 1 reader)"
	return res, nil
}

func warmOne(ctx context.Context, url, token string) error {
	ws, err := dial(ctx, url, token)
	if err != nil {
		return err
	}
	defer ws.Close()
	_, err = readFirst(ws, 30*time.Second)
	return err
}

// memSnap is the process's Go memory at one moment, after two
// collections. (RSS is not used: the heap reuses pages the earlier parts
// of the benchmark left mapped, so its growth says little.)
type memSnap struct {
	heap, stack uint64
	goroutines  int
}

func snapshot() memSnap {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSnap{heap: m.HeapInuse, stack: m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// measureConns snapshots this process, has a child open n sockets to the
// targets (a file of "url<TAB>token" lines, used round robin) and read
// each one's first frame, snapshots again, then calls closeAll, which must
// close the server side of every socket: the child exits when all of its
// sockets have ended.
func (e *chatEnv) measureConns(ctx context.Context, exe, targets string, n int, closeAll func()) (memResult, error) {
	before := snapshot()
	cmd := exec.Command(exe, dialChildCommand, "-targets", targets, "-n", strconv.Itoa(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return memResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return memResult{}, fmt.Errorf("start the client process: %w", err)
	}
	ready := make(chan struct{})
	readDone := make(chan struct{})
	go func() { // owned: every path below waits for readDone
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "ready") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() { <-readDone; exited <- cmd.Wait() }() // owned: every path below receives from exited
	failed := func(what string, err error) error {
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return fmt.Errorf("%s: %w\nclient process: %s", what, err, msg)
		}
		return fmt.Errorf("%s: %w", what, err)
	}

	select {
	case <-ready:
	case err := <-exited:
		if err == nil {
			err = errors.New("exited")
		}
		return memResult{}, failed("the client process ended before its sockets were open", err)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		return memResult{}, ctx.Err()
	}
	_ = sleepCtx(ctx, 500*time.Millisecond) // let the servers' writers go idle
	after := snapshot()
	closeAll()
	select {
	case err := <-exited:
		if err != nil {
			return memResult{}, failed("the client process", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return memResult{}, failed("the client process", errors.New("still running 30s after the server closed its sockets"))
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return memResult{
		heap:       per(after.heap, before.heap),
		stack:      per(after.stack, before.stack),
		goroutines: float64(after.goroutines-before.goroutines) / float64(n),
	}, nil
}

// runDialChild is the client process of the memory figure: it opens -n
// sockets to the targets in -targets, reads each one's first frame,
// prints "ready", and holds them until the server has closed them all or
// ctx ends.
func runDialChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(dialChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	targetsFile := fs.String("targets", "", "file of url<TAB>token lines, used round robin")
	n := fs.Int("n", 0, "sockets to open")
	workers := fs.Int("parallel", 32, "concurrent dials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *targetsFile == "" || *n < 1 || *workers < 1 {
		return fmt.Errorf("%s needs -targets, -n >= 1 and -parallel >= 1", dialChildCommand)
	}
	if err := raiseFileLimit(uint64(*n + 64)); err != nil {
		return err
	}
	b, err := os.ReadFile(*targetsFile)
	if err != nil {
		return err
	}
	type target struct{ url, token string }
	var targets []target
	for line := range strings.Lines(string(b)) {
		url, tok, _ := strings.Cut(strings.TrimRight(line, "\n"), "\t")
		if url != "" {
			targets = append(targets, target{url, tok})
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("%s lists no targets", *targetsFile)
	}
	conns := make([]*websocket.Conn, *n)
	defer func() {
		for _, ws := range conns {
			if ws != nil {
				_ = ws.Close()
			}
		}
	}()
	err = parallel(*n, *workers, func(i int) error {
		t := targets[i%len(targets)]
		ws, err := dial(ctx, t.url, t.token)
		if err != nil {
			return fmt.Errorf("socket %d: %w", i, err)
		}
		conns[i] = ws
		if _, err := readFirst(ws, time.Minute); err != nil {
			return fmt.Errorf("socket %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready %d\n", *n)
	var wg sync.WaitGroup
	for _, ws := range conns {
		wg.Go(func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	stop := context.AfterFunc(ctx, func() {
		for _, ws := range conns {
			_ = ws.Close()
		}
	})
	defer stop()
	wg.Wait()
	return nil
}
