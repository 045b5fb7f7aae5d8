package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/domain/domaintest"
)

// privateRedis is a redis-server of the benchmark's own, on a free port
// with a scratch directory and no persistence: its CPU (INFO cpu) is the
// benchmark's alone, and nothing touches the Redis others use.
type privateRedis struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	client *goredis.Client
	exited chan struct{}
}

// redisServerBinary is where Debian installs redis-server.
const redisServerBinary = "/usr/bin/redis-server"

func startRedis(ctx context.Context) (*privateRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat(redisServerBinary); serr != nil {
			return nil, errors.New("redis-server is not installed: the benchmark runs its own (apt-get install redis-server, or `make services`)")
		}
		bin = redisServerBinary
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "parley-bench-redis-")
	if err != nil {
		return nil, err
	}
	r := &privateRedis{dir: dir, url: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	var out domaintest.SyncBuffer
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }() // owned: stop waits for exited
	r.client = goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	for try := 0; ; try++ {
		err := r.client.Ping(ctx).Err()
		if err == nil {
			return r, nil
		}
		select {
		case <-r.exited:
			r.stop()
			return nil, fmt.Errorf("redis-server exited: %s", out.String())
		default:
		}
		if try > 100 || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("redis-server on port %d does not answer: %w", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server and removes its directory.
func (r *privateRedis) stop() {
	_ = r.client.Close()
	_ = r.cmd.Process.Kill()
	<-r.exited
	_ = os.RemoveAll(r.dir)
}
