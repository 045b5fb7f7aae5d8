package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
)

// Where the CPU goes while a round streams: chatd's process, the
// PostgreSQL processes serving it, Redis, and the machine. Each is read
// from /proc at the window's start and end (Redis from INFO cpu).

// procCPU returns the user plus system CPU time of process pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return statCPU(string(b))
}

// statCPU parses /proc/<pid>/stat: utime and stime are its 14th and 15th
// fields, counted after the command name, which may hold spaces but ends
// at the last ')'.
func statCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line %.60q", stat)
	}
	f := strings.Fields(stat[i+1:]) // field 3 (state) onwards
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat line %.60q", stat)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat line %.60q", stat)
	}
	return time.Duration(u+s) * time.Second / 100, nil // USER_HZ
}

// machineBusy returns the machine's busy CPU time (/proc/stat), 0 where it
// cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return statBusy(line)
}

// statBusy returns the busy time of /proc/stat's "cpu" line: user, nice,
// system, irq, softirq and steal. Idle and iowait are not busy; guest and
// guest_nice, which follow steal, are counted in user and nice already.
func statBusy(line string) time.Duration {
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest guest_nice
	if len(f) < 2 {
		return 0
	}
	var busy int64
	for i, x := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseInt(x, 10, 64)
		if i != 3 && i != 4 { // not idle, not iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cost is what one window cost.
type cost struct {
	wall time.Duration
	// CPU time of chatd; PostgreSQL's backends serving the benchmark's
	// database; its shared background processes (WAL writer, background
	// writer, checkpointer: shared with whatever else the server runs);
	// Redis (the benchmark's own); this process (clients and model); and
	// the whole machine.
	chatd, pgBackends, pgShared, redis, bench, machine time.Duration
	commits                                            int64              // transactions committed in the database
	active                                             map[string]float64 // mean active backends by kind
	waits                                              map[string]float64 // mean active backends by wait event
}

// meter measures windows.
type meter struct {
	pool  *pgxpool.Pool // a connection to the server, for its statistics
	redis *goredis.Client
}

// window is a measurement under way.
type window struct {
	m       *meter
	chatd   *chatdProc
	start   time.Time
	chatd0  time.Duration
	pg0     map[int]pgProc
	redis0  time.Duration
	bench0  time.Duration
	mach0   time.Duration
	commit0 int64

	stopSampling context.CancelFunc
	sampled      chan struct{}
	samples      int
	active       map[string]int
	waits        map[string]int
}

// pgProc is a PostgreSQL process and its CPU time.
type pgProc struct {
	shared bool
	cpu    time.Duration
}

// sharedBackendTypes are PostgreSQL's server-wide background processes
// that work for every database (the benchmark's appends' WAL included).
var sharedBackendTypes = []string{"walwriter", "background writer", "checkpointer"}

// pgProcs lists the processes serving db (its backends and autovacuum
// workers, but not the meter's own connection) and the shared background
// processes, with their CPU time now.
func (m *meter) pgProcs(ctx context.Context, db string) (map[int]pgProc, error) {
	rows, err := m.pool.Query(ctx, `SELECT pid, backend_type FROM pg_stat_activity
		WHERE (datname = $1 AND pid <> pg_backend_pid()) OR backend_type = ANY ($2)`, db, sharedBackendTypes)
	if err != nil {
		return nil, fmt.Errorf("list PostgreSQL's processes: %w", err)
	}
	defer rows.Close()
	out := map[int]pgProc{}
	for rows.Next() {
		var pid int
		var typ string
		if err := rows.Scan(&pid, &typ); err != nil {
			return nil, err
		}
		cpu, err := procCPU(pid)
		if err != nil {
			continue // it has just exited
		}
		out[pid] = pgProc{shared: slices.Contains(sharedBackendTypes, typ), cpu: cpu}
	}
	return out, rows.Err()
}

func (m *meter) redisCPU(ctx context.Context) time.Duration {
	info, err := m.redis.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

func (m *meter) commits(ctx context.Context, db string) int64 {
	var n int64
	_ = m.pool.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, db).Scan(&n)
	return n
}

// begin starts a window over chatd c; sampleEvery > 0 also samples the
// database's active backends that often.
func (m *meter) begin(ctx context.Context, c *chatdProc, sampleEvery time.Duration) (*window, error) {
	w := &window{m: m, chatd: c, active: map[string]int{}, waits: map[string]int{}, sampled: make(chan struct{})}
	var err error
	if w.pg0, err = m.pgProcs(ctx, c.db.name); err != nil {
		return nil, err
	}
	w.redis0 = m.redisCPU(ctx)
	w.commit0 = m.commits(ctx, c.db.name)
	w.chatd0, _ = procCPU(c.pid)
	w.bench0, w.mach0 = selfCPU(), machineBusy()
	w.start = time.Now()
	sctx, cancel := context.WithCancel(ctx)
	w.stopSampling = cancel
	go func() { // owned: end waits for sampled
		defer close(w.sampled)
		if sampleEvery > 0 {
			w.sample(sctx, sampleEvery)
		}
	}()
	return w, nil
}

// sample counts the database's active backends by kind and wait event
// every period until ctx ends.
func (w *window) sample(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rows, err := w.m.pool.Query(ctx, `SELECT query, coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
			WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()`, w.chatd.db.name)
		if err != nil {
			return
		}
		for rows.Next() {
			var q, wait string
			if rows.Scan(&q, &wait) == nil {
				w.active[queryKind(q)]++
				w.waits[wait]++
			}
		}
		rows.Close()
		w.samples++
	}
}

// queryKind names what a statement of chatd's does.
func queryKind(q string) string {
	switch {
	case strings.Contains(q, "INSERT INTO events"):
		return "append"
	case strings.Contains(q, "FROM events") && (strings.Contains(q, "pg_snapshot_xmin") || strings.Contains(q, "txid <")):
		return "log read"
	case strings.Contains(q, "pg_locks"):
		return "exact bound"
	case strings.Contains(q, "FROM events"):
		return "stream read"
	case strings.Contains(q, "chat_logs") || strings.Contains(q, "rooms") || strings.Contains(q, "projection_checkpoints"):
		return "chatlog"
	case strings.Contains(q, "pg_notify"):
		return "notify"
	}
	return "other"
}

// end closes the window.
func (w *window) end(ctx context.Context) (cost, error) {
	wall := time.Since(w.start)
	u := cost{wall: wall}
	chatd1, err := procCPU(w.chatd.pid)
	if err != nil {
		return u, fmt.Errorf("chatd (%s) CPU: %w", w.chatd.name, err)
	}
	u.chatd = chatd1 - w.chatd0
	u.bench, u.machine = selfCPU()-w.bench0, machineBusy()-w.mach0
	w.stopSampling()
	<-w.sampled
	pg1, err := w.m.pgProcs(ctx, w.chatd.db.name)
	if err != nil {
		return u, err
	}
	for pid, p := range pg1 {
		d := p.cpu - w.pg0[pid].cpu // a backend started in the window counts whole
		if p.shared {
			u.pgShared += d
		} else {
			u.pgBackends += d
		}
	}
	u.redis = w.m.redisCPU(ctx) - w.redis0
	u.commits = w.m.commits(ctx, w.chatd.db.name) - w.commit0
	u.active, u.waits = map[string]float64{}, map[string]float64{}
	if w.samples > 0 {
		for k, n := range w.active {
			u.active[k] = float64(n) / float64(w.samples)
		}
		for k, n := range w.waits {
			u.waits[k] = float64(n) / float64(w.samples)
		}
	}
	return u, nil
}

// collector gathers values from many goroutines.
type collector[T any] struct {
	mu    sync.Mutex
	items []T
}

func (c *collector[T]) add(v T) {
	c.mu.Lock()
	c.items = append(c.items, v)
	c.mu.Unlock()
}

func (c *collector[T]) all() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.items)
}
