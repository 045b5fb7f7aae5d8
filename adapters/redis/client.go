package redis

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Client defaults NewClient applies when the URL does not set them.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = time.Second
	DefaultWriteTimeout = time.Second
	// DefaultDialerRetries is how many times a refused connection is
	// dialled: once. Callers of the memory wait a fraction of a second at
	// most, and the projection's Runner retries with its own backoff.
	DefaultDialerRetries = 1
)

// NewClient returns a client for a redis:// or rediss:// URL such as
// redis://user:password@127.0.0.1:6379/0?max_retries=1 (the query
// parameters are go-redis's Options in snake case; the timeouts default
// to the constants above, and a refused dial is not retried). It connects
// lazily: an unreachable server shows on the first command. Errors never
// repeat the URL's password.
func NewClient(rawURL string) (*goredis.Client, error) {
	if rawURL == "" {
		return nil, errors.New("redis: the URL is empty: set it to e.g. redis://127.0.0.1:6379/0")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("redis: the URL does not parse: use redis://[user:password@]host:port/db")
	}
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis: URL %s: %v", u.Redacted(), redactErr(err, u))
	}
	q := u.Query()
	if !q.Has("dial_timeout") {
		opts.DialTimeout = DefaultDialTimeout
	}
	if !q.Has("read_timeout") {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if !q.Has("write_timeout") {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	opts.DialerRetries = DefaultDialerRetries
	return goredis.NewClient(opts), nil
}

// redactErr hides the URL's password if err repeats it.
func redactErr(err error, u *url.URL) string {
	msg := err.Error()
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}
