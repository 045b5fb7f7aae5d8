package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parleychat/parley/cmd/internal/chatdenv"
	"github.com/parleychat/parley/cmd/internal/stack"
	"github.com/parleychat/parley/domain/domaintest"
)

// chatd runs in a child process of the benchmark, so that its CPU time is
// its own (/proc/<pid>/stat), apart from the clients' and the model
// server's. The child is this binary again, in the hidden mode
// chatdChildCommand, which runs chatd exactly as chatd's main does
// (chatdenv.Load, stack.New, Server.Serve) with the environment the
// benchmark gives it, plus a control listener for the measurements:
// GET /memsnap (Go heap and stacks after two collections) and
// /debug/pprof/.
const chatdChildCommand = "__chatd"

// Variables only the chatd child reads, besides chatd's own PARLEY_*.
const (
	// benchStoreVar=memory swaps the log for the in-memory store and turns
	// the projections off: the relay-only baseline, the same server with
	// nothing durable behind it.
	benchStoreVar = "PARLEY_BENCH_STORE"
	// benchLogVar names the file chatd's JSON log goes to.
	benchLogVar = "PARLEY_BENCH_LOG"
	// benchPlaintextVar=1 turns the encryption of conversation text off
	// (chatdenv.Config.Plaintext): the encryption-off side.
	benchPlaintextVar = "PARLEY_BENCH_PLAINTEXT"
)

// runChatdChild is the chatd child process: it prints "control <addr>"
// and then "ready <addr>" on stdout, and serves until ctx ends (SIGTERM).
func runChatdChild(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := chatdenv.Load(getenv)
	if err != nil {
		return err
	}
	if getenv(benchStoreVar) == "memory" {
		cfg.EventStore, cfg.Projections = stack.MemoryStore, false
	}
	cfg.Plaintext = getenv(benchPlaintextVar) == "1"
	logOut := io.Discard
	if path := getenv(benchLogVar); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /memsnap", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(snapshot())
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	ctl := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = ctl.Serve(ln) })
	defer wg.Wait()
	defer ctl.Close()
	fmt.Fprintf(stdout, "control %s\n", ln.Addr())

	s, err := stack.New(ctx, cfg, cfg.Logger(logOut))
	if err != nil {
		return err
	}
	return s.Serve(ctx, func(addr net.Addr) { fmt.Fprintf(stdout, "ready %s\n", addr) })
}

// memSnap is a process's Go memory at one moment, after two collections.
// (RSS is not used: the heap reuses pages earlier work left mapped, so its
// growth says little.)
type memSnap struct {
	Heap       uint64 `json:"heap"`
	Stack      uint64 `json:"stack"`
	Goroutines int    `json:"goroutines"`
}

func snapshot() memSnap {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSnap{Heap: m.HeapInuse, Stack: m.StackInuse, Goroutines: runtime.NumGoroutine()}
}

// chatdProc is a running chatd child.
type chatdProc struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	base    string // http://127.0.0.1:port
	control string // http://127.0.0.1:port of the control listener
	logPath string
	db      *scratchDB    // its database (set by streamEnv.startChatd)
	exited  chan struct{} // closed when the process has been waited for
	waitErr error
}

// startChatd starts a chatd child with env (the whole environment) and
// waits until it accepts connections.
func startChatd(ctx context.Context, name string, env []string, logPath string) (*chatdProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the benchmark's binary to run chatd: %w", err)
	}
	cmd := exec.Command(exe, chatdChildCommand)
	cmd.Env = append(env, benchLogVar+"="+logPath)
	var stderr domaintest.SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start chatd (%s): %w", name, err)
	}
	p := &chatdProc{name: name, cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, exited: make(chan struct{})}
	lines := make(chan string, 4)
	go func() { // owned: the process's end (exited) comes after it
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	failed := func(err error) (*chatdProc, error) {
		_ = cmd.Process.Kill()
		<-p.exited
		return nil, fmt.Errorf("chatd (%s): %w\n%s%s", name, err, stderr.String(), p.logTail())
	}
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	for p.base == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				return failed(errors.New("exited before it was ready"))
			}
			if a, ok := strings.CutPrefix(line, "control "); ok {
				p.control = "http://" + a
			}
			if a, ok := strings.CutPrefix(line, "ready "); ok {
				p.base = "http://" + a
			}
		case <-timeout.C:
			return failed(errors.New("not ready after 2 minutes"))
		case <-ctx.Done():
			return failed(ctx.Err())
		}
	}
	return p, nil
}

// logTail is the end of the child's log, for error messages.
func (p *chatdProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "chatd's log ends:\n" + string(b)
}

// stop ends the child with SIGTERM, as a deployment would, and kills it
// if it has not exited within 30 seconds.
func (p *chatdProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("chatd (%s) did not stop within 30s of SIGTERM", p.name)
	}
	if p.waitErr != nil {
		return fmt.Errorf("chatd (%s): %w\n%s", p.name, p.waitErr, p.logTail())
	}
	return nil
}

// memSnap asks the child for its memory snapshot.
func (p *chatdProc) memSnap(ctx context.Context) (memSnap, error) {
	var s memSnap
	err := getJSON(ctx, p.control+"/memsnap", &s)
	return s, err
}

// profile records a CPU profile of the child for d into path.
func (p *chatdProc) profile(ctx context.Context, d time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.control, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile chatd (%s): %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile chatd (%s): %s", p.name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// logSummary counts the warnings and errors in the child's log by
// message: "3× memory: could not summarise …; 1× …", or "none".
func (p *chatdProc) logSummary() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	counts := map[string]int{}
	var order []string
	for line := range strings.Lines(string(b)) {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Err   string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || (rec.Level != "WARN" && rec.Level != "ERROR") {
			continue
		}
		key := rec.Msg
		if rec.Err != "" {
			key += " (" + truncate(rec.Err, 80) + ")"
		}
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
	}
	if len(order) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d× %s", counts[k], k))
	}
	return strings.Join(parts, "; ")
}
