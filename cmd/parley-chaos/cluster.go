package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/domain/privacy"
)

// secret is the JWT secret chatd runs with and clients mint tokens with.
const secret = "parley-chaos-secret-0123456789abcdef0123456789"

// pgSettings make a crash lose more: the WAL writer flushes asynchronous
// commits (chatd's answer chunks) only every second, so a crash can take
// the last second of chunks with it, as production's settings allow for
// a few hundred milliseconds.
var pgSettings = map[string]string{"wal_writer_delay": "'1000ms'"}

// cluster is the private PostgreSQL and Redis and the chatd process, which
// it restarts when it dies, counting the restarts it did not cause.
type cluster struct {
	dir    string // chatd's log
	pg     *pgtest.Server
	redis  *redistest.Server
	pool   *pgxpool.Pool // the truth: read the log directly
	store  *postgres.Store
	log    *privacy.Store // store, its conversation text opened under the rooms' keys
	kek    string         // chatd's PARLEY_DATA_KEY, the harness's own
	chatd  string
	port   int
	base   string // http://127.0.0.1:port
	stderr io.Writer

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	killing  bool          // the exit of cmd is ours
	needed   int           // restarts after exits nobody caused
	sup      sync.WaitGroup
	stopping bool
}

func startCluster(ctx context.Context, cfg config, stderr io.Writer) (_ *cluster, err error) {
	dir, err := os.MkdirTemp("", "parley-chaos-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, chatd: cfg.chatd, stderr: stderr}
	raw := make([]byte, privacy.KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	kek, err := privacy.NewKEK(raw)
	if err != nil {
		return nil, err
	}
	c.kek = base64.StdEncoding.EncodeToString(raw)
	defer func() {
		if err != nil {
			c.close(true)
		}
	}()
	if c.pg, err = pgtest.StartServer(ctx, pgSettings); err != nil {
		return nil, err
	}
	if c.redis, err = redistest.NewServer(ctx); err != nil {
		return nil, err
	}
	if c.port, err = pgtest.FreePort(); err != nil {
		return nil, err
	}
	c.base = "http://127.0.0.1:" + strconv.Itoa(c.port)
	if err := c.startChatd(ctx); err != nil {
		return nil, err
	}
	// chatd has migrated the database: the harness reads the log itself.
	if c.pool, err = pgxpool.New(ctx, c.pg.URL); err != nil {
		return nil, err
	}
	c.store = postgres.NewStore(c.pool, postgres.StoreConfig{})
	// chatd seals conversation text: the comparison reads it opened, as
	// chatctl does, under the key this harness gave chatd.
	ring, err := privacy.NewKeyring(postgres.NewKeys(c.pool), privacy.KEKs{kek}, privacy.KeyringConfig{})
	if err != nil {
		return nil, err
	}
	c.log = privacy.NewStore(c.store, ring)
	return c, nil
}

func (c *cluster) logPath() string { return filepath.Join(c.dir, "chatd.log") }

// startChatd starts chatd and waits until it serves.
func (c *cluster) startChatd(ctx context.Context) error {
	log, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.chatd)
	cmd.Env = append(os.Environ(),
		"PARLEY_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(c.port),
		"PARLEY_DATABASE_URL="+c.pg.URL,
		"PARLEY_REDIS_URL="+c.redis.URL,
		"PARLEY_JWT_SECRET="+secret,
		"PARLEY_DATA_KEY="+c.kek,
		"PARLEY_INSTANCE=chaos-1", // one name across restarts: a restart recovers its own answers
		"PARLEY_OFFLINE_TOKEN_DELAY=25ms",
		"PARLEY_ANSWER_TIMEOUT=20s",
		"PARLEY_SWEEP_INTERVAL=2s",
		"PARLEY_SHUTDOWN_GRACE=2s",
		"PARLEY_CHATLOG_INTERVAL=2s", // fewer synchronous commits to flush the chunks before a crash
		"PARLEY_HISTORY_MESSAGES=10000",
		"PARLEY_HISTORY_BYTES=67108864",
		"PARLEY_MESSAGES_PER_MINUTE=600",
		"PARLEY_CONNECTS_PER_MINUTE=600", // clients reconnect after every fault, all from 127.0.0.1
		"PARLEY_ADDR_CONNECTS_PER_MINUTE=60000",
		"PARLEY_LOG_LEVEL=info",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a Ctrl-C of make chaos reaches parley-chaos,
	// which stops chatd itself, and is not taken for a crash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start chatd: %w", err)
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.exited, c.killing = cmd, exited, false
	c.mu.Unlock()
	c.sup.Go(func() { // owned: close waits for it
		_ = cmd.Wait()
		log.Close()
		close(exited)
		c.mu.Lock()
		ours := c.killing || c.stopping
		c.mu.Unlock()
		if ours {
			return
		}
		fmt.Fprintln(c.stderr, "parley-chaos: chatd exited by itself; restarting it (counted as a restart needed)")
		c.mu.Lock()
		c.needed++
		c.mu.Unlock()
		if err := c.startChatd(context.Background()); err != nil {
			fmt.Fprintln(c.stderr, "parley-chaos: restart chatd:", err)
		}
	})
	return c.waitServing(ctx, exited)
}

// waitServing waits until chatd answers /livez.
func (c *cluster) waitServing(ctx context.Context, exited <-chan struct{}) error {
	for deadline := time.Now().Add(90 * time.Second); ; {
		resp, err := http.Get(c.base + "/livez")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("chatd exited at start; see %s", c.logPath())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chatd did not serve within 90s; see %s", c.logPath())
		}
	}
}

// kill kills chatd with SIGKILL, waits for it, and starts it again.
func (c *cluster) kill(ctx context.Context) error {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.killing = true
	c.mu.Unlock()
	_ = cmd.Process.Kill()
	<-exited
	return c.startChatd(ctx)
}

// restartsNeeded returns the restarts done since the last call because
// chatd had exited by itself.
func (c *cluster) restartsNeeded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.needed
	c.needed = 0
	return n
}

// close stops chatd and the servers; the directory stays when keep.
func (c *cluster) close(keep bool) {
	c.mu.Lock()
	c.stopping = true
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	c.sup.Wait()
	if c.store != nil {
		_ = c.store.Close()
	}
	if c.pool != nil {
		c.pool.Close()
	}
	if c.redis != nil {
		_ = c.redis.Close()
	}
	if c.pg != nil {
		_ = c.pg.Close()
	}
	if keep {
		fmt.Fprintf(c.stderr, "parley-chaos: kept %s (chatd.log)\n", c.dir)
		return
	}
	_ = os.RemoveAll(c.dir)
}
