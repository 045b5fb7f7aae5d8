package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/redis/redistest"
)

// privateRedis is a redis-server of the benchmark's own (redistest's
// private server: a free port, a scratch directory, no persistence), so
// that its CPU (INFO cpu) is the benchmark's alone and nothing touches the
// Redis others use; client reads its CPU.
type privateRedis struct {
	*redistest.Server
	client *goredis.Client
}

func startRedis(ctx context.Context) (*privateRedis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not installed: the benchmark runs its own (apt-get install redis-server, or `make services`)")
	}
	s, err := redistest.NewServer(ctx)
	if err != nil {
		return nil, fmt.Errorf("start the benchmark's Redis: %w", err)
	}
	opts, err := goredis.ParseURL(s.URL)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return &privateRedis{Server: s, client: goredis.NewClient(opts)}, nil
}

// stop ends the server and removes its directory.
func (r *privateRedis) stop() {
	_ = r.client.Close()
	_ = r.Close()
}
