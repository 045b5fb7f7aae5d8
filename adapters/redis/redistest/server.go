package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Server is a private redis-server without persistence, on a port and in a
// directory of its own, for tests of outages and for fault injection
// (make chaos) that stop, pause, flush or restart a server: never the
// shared one the suite uses. It runs as a child of this process.
type Server struct {
	// URL is the server's URL, database 0.
	URL  string
	port int
	dir  string
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed when cmd has exited
}

// StartServer starts a private server for t and stops it when the test
// ends. The test is skipped when redis-server is not installed.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("SKIP: redis-server is not installed; " + t.Name() + " not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := NewServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// NewServer starts redis-server on a free port of 127.0.0.1, saving
// nothing (a restart is empty), and waits until it answers. Close stops
// it and deletes its directory.
func NewServer(ctx context.Context) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redistest: find a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "parley-redis-")
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	s := &Server{URL: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", port: port, dir: dir}
	if err := s.Restart(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Start starts the stopped server again, empty, for t.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the stopped server again, empty, on its port, and waits
// until it answers.
func (s *Server) Restart(ctx context.Context) error {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // owned: Stop waits for done
	s.cmd, s.done = cmd, done
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.port)})
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return errors.New("redistest: redis-server exited at start")
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return fmt.Errorf("redistest: private redis-server on port %d does not answer: %w", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pause stops the server's process (SIGSTOP): it holds its connections
// and answers nothing until Resume.
func (s *Server) Pause() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Flush deletes every key of every database (FLUSHALL).
func (s *Server) Flush(ctx context.Context) error {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.port)})
	defer c.Close()
	return c.FlushAll(ctx).Err()
}

// Stop kills the server (SIGKILL), as a crash would, and waits for it;
// with no persistence, the next start is empty. It is idempotent.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server dies as well
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Close stops the server and deletes its directory.
func (s *Server) Close() error {
	s.Stop()
	return os.RemoveAll(s.dir)
}
