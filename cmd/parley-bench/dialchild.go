package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain/domaintest"
)

// dialChildCommand is the hidden subcommand the memory figure runs in a
// child process of the benchmark's own binary, so that the clients' memory
// is not counted with the server's.
const dialChildCommand = "__chat-dial-child"

// measureConns snapshots the server (snap), has a child open n sockets to
// the targets (a file of "url<TAB>token" lines, used round robin, one
// socket to the first target first, so that pools and caches the first
// socket fills are not counted) and read each one's first frame,
// snapshots again, then stops the child, which closes its sockets.
func measureConns(ctx context.Context, exe, targets string, n int, snap func(context.Context) (memSnap, error)) (memResult, error) {
	warm, err := runDialer(ctx, exe, targets, 1)
	if err != nil {
		return memResult{}, err
	}
	if err := warm.stop(); err != nil {
		return memResult{}, err
	}
	_ = sleepCtx(ctx, 500*time.Millisecond) // let the server see the warm-up socket close
	before, err := snap(ctx)
	if err != nil {
		return memResult{}, err
	}
	d, err := runDialer(ctx, exe, targets, n)
	if err != nil {
		return memResult{}, err
	}
	_ = sleepCtx(ctx, 500*time.Millisecond) // let the server's writers go idle
	after, err := snap(ctx)
	if err := errors.Join(err, d.stop()); err != nil {
		return memResult{}, err
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return memResult{
		heap:       per(after.Heap, before.Heap),
		stack:      per(after.Stack, before.Stack),
		goroutines: float64(after.Goroutines-before.Goroutines) / float64(n),
	}, nil
}

// dialer is a running client process.
type dialer struct {
	cmd    *exec.Cmd
	stderr domaintest.SyncBuffer
	exited chan error
}

// runDialer starts a client process opening n sockets to the targets and
// returns once they are open.
func runDialer(ctx context.Context, exe, targets string, n int) (*dialer, error) {
	cmd := exec.Command(exe, dialChildCommand, "-targets", targets, "-n", strconv.Itoa(n))
	d := &dialer{cmd: cmd, exited: make(chan error, 1)}
	cmd.Stderr = &d.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the client process: %w", err)
	}
	ready := make(chan struct{})
	go func() { // owned: stop and every failure path receive from exited
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "ready") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		d.exited <- cmd.Wait()
	}()
	failed := func(what string, err error) error {
		msg := strings.TrimSpace(d.stderr.String())
		if msg != "" {
			return fmt.Errorf("%s: %w\nclient process: %s", what, err, msg)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	select {
	case <-ready:
		return d, nil
	case err := <-d.exited:
		if err == nil {
			err = errors.New("exited")
		}
		return nil, failed("the client process ended before its sockets were open", err)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-d.exited
		return nil, ctx.Err()
	}
}

// stop asks the client process to close its sockets and exit.
func (d *dialer) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			return fmt.Errorf("the client process: %w: %s", err, d.stderr.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return errors.New("the client process was still running 30s after it was asked to stop")
	}
}

// bareServer is the baseline server: a gorilla upgrader configured as the
// gateway's, which sends one fixed frame and then holds the socket with a
// single blocked reader (the handler's goroutine).
type bareServer struct {
	first    []byte
	upgrader websocket.Upgrader
	url      string
	srv      *http.Server
	served   chan struct{}

	mu      sync.Mutex
	closing bool
	conns   map[*websocket.Conn]struct{}
	wg      sync.WaitGroup
	stop    func()
}

func newBareServer(first []byte) (*bareServer, error) {
	b := &bareServer{first: first, conns: map[*websocket.Conn]struct{}{}, served: make(chan struct{}), upgrader: websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   0, // as the gateway: reuse the HTTP server's 4 KiB reader
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		Subprotocols:     []string{wsapi.Subprotocol},
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() { defer close(b.served); _ = b.srv.Serve(ln) }() // owned: stop waits for served
	b.url = "ws://" + ln.Addr().String() + "/"
	b.stop = sync.OnceFunc(func() {
		_ = b.srv.Close()
		<-b.served
		b.mu.Lock()
		b.closing = true
		for c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b, nil
}

func (b *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		_ = ws.Close()
		return
	}
	b.conns[ws] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, ws)
		b.mu.Unlock()
		_ = ws.Close()
		b.wg.Done()
	}()
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, b.first); err != nil {
		return
	}
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
	}
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
