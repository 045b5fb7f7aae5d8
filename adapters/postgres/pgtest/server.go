package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where the PostgreSQL 15 server programs are (Debian's
// postgresql-15 package).
const BinDir = "/usr/lib/postgresql/15/bin"

// Server is a private PostgreSQL server in a directory of its own, on a
// port of its own, for tests and fault injection (make chaos) that stop,
// crash or restart a server: never the shared one the suite uses. As root
// it runs as the postgres user, since PostgreSQL refuses to run as root.
type Server struct {
	dir  string // the data directory is dir/data
	port int
	cred *syscall.Credential // nil: as this process's user
	// URL is the parley database's URL, user parley, no password.
	URL string
}

// StartServer creates a cluster in a new directory under the system's
// temporary directory (where the postgres user can reach it), starts it
// on a free port of 127.0.0.1 with settings on top of small defaults
// (fsync and synchronous_commit stay on), creates the database parley and
// returns the running server. Close stops it and deletes the directory.
func StartServer(ctx context.Context, settings map[string]string) (_ *Server, err error) {
	dir, err := os.MkdirTemp("", "parley-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root, PostgreSQL needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("pgtest: give %s to the postgres user: %w", dir, err)
		}
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s.port = port
	s.URL = fmt.Sprintf("postgres://parley@127.0.0.1:%d/parley?sslmode=disable", port)
	if out, err := s.run(ctx, "initdb", "-D", s.data(), "-U", "parley", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb in %s: %w\n%s", dir, err, out)
	}
	conf := map[string]string{
		"listen_addresses": "'127.0.0.1'", "port": strconv.Itoa(port), "unix_socket_directories": "'" + dir + "'",
		"max_connections": "120", "shared_buffers": "'32MB'", "fsync": "on", "synchronous_commit": "on",
		"logging_collector": "off", "log_min_messages": "warning",
	}
	for k, v := range settings {
		conf[k] = v
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, conf[k])
	}
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	admin, err := pgx.Connect(ctx, fmt.Sprintf("postgres://parley@127.0.0.1:%d/postgres?sslmode=disable", port))
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to the private server: %w", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE parley"); err != nil {
		return nil, fmt.Errorf("pgtest: create database parley: %w", err)
	}
	return s, nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// DataDir returns the server's data directory (its tables, indexes and
// WAL), for tests that search what it stores.
func (s *Server) DataDir() string { return s.data() }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

func (s *Server) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir, prog), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// Start starts the stopped (or crashed) server and waits until it accepts
// connections; after a crash that includes its recovery.
func (s *Server) Start(ctx context.Context) error {
	if out, err := s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "120", "start"); err != nil {
		return fmt.Errorf("pgtest: start the private server: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the server in mode: "fast" (a clean shutdown) or
// "immediate" (no checkpoint, every process quits at once; the next start
// recovers from the WAL, as after a crash).
func (s *Server) Stop(ctx context.Context, mode string) error {
	if out, err := s.run(ctx, "pg_ctl", "-D", s.data(), "-m", mode, "-w", "stop"); err != nil {
		return fmt.Errorf("pgtest: stop the private server (%s): %w\n%s", mode, err, out)
	}
	return nil
}

// Crash kills the postmaster and every process of the server with
// SIGKILL, and waits until they are gone: a machine losing power, as far
// as the server's memory (its unflushed WAL) goes.
func (s *Server) Crash() error {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("pgtest: crash: the server is not running: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return fmt.Errorf("pgtest: crash: postmaster.pid: %w", err)
	}
	pids := append([]int{pid}, children(pid)...)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		alive := false
		for _, p := range pids {
			if syscall.Kill(p, 0) == nil && !zombie(p) {
				alive = true
			}
		}
		if !alive {
			// A killed process lingers as a zombie until init reaps it, and
			// the next start would take it for a live postmaster.
			for _, lock := range []string{filepath.Join(s.data(), "postmaster.pid"), filepath.Join(s.dir, fmt.Sprintf(".s.PGSQL.%d.lock", s.port))} {
				if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("pgtest: crash: %w", err)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("pgtest: crash: the server's processes did not die")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}

// Close stops the server at once and deletes its directory.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err == nil {
		_ = s.Stop(ctx, "immediate")
	}
	return os.RemoveAll(s.dir)
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
