package kurrentdbtest

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// notReadyAfterStart is how long a restarted Server answers "Server
// Is Not Ready", as a KurrentDB node does while it opens its database.
const notReadyAfterStart = 150 * time.Millisecond

// fakeNet is how a Server is served: its gRPC server on a fixed
// address, the TCP connections open to it, and the faults a test injects.
type fakeNet struct {
	addr string
	open atomic.Int64 // TCP connections accepted and not yet closed

	mu           sync.Mutex
	srv          *grpc.Server
	done         chan struct{} // closed when srv.Serve has returned
	busy         int           // calls still to refuse with "Server Is Too Busy"
	notReadyTill time.Time
	denied       bool // refuse every call as KurrentDB refuses a user without rights
}

// serve starts serving f on a new local port; the test's cleanup stops it.
func (f *Server) serve(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no local TCP: %v", err)
	}
	f.net.addr = l.Addr().String()
	f.startOn(l)
	t.Cleanup(f.Stop)
}

// startOn serves f on l.
func (f *Server) startOn(l net.Listener) {
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(f.unaryFaults), grpc.ChainStreamInterceptor(f.streamFaults))
	api.RegisterStreamsServer(srv, f)
	done := make(chan struct{})
	f.net.mu.Lock()
	f.net.srv, f.net.done = srv, done
	f.net.mu.Unlock()
	go func() { // owned: stop waits for done
		defer close(done)
		_ = srv.Serve(&countingListener{Listener: l, open: &f.net.open})
	}()
}

// Stop takes the node down as a killed process goes: the listener
// closes, every connection drops. It is idempotent.
func (f *Server) Stop() {
	f.net.mu.Lock()
	srv, done := f.net.srv, f.net.done
	f.net.srv = nil
	f.net.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-done
}

// Restart brings a stopped node back on its old address, with its data,
// answering "Server Is Not Ready" for notReadyAfterStart.
func (f *Server) Restart(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port may linger for a moment
		if l, err = net.Listen("tcp", f.net.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart the fake server on %s: %v", f.net.addr, err)
	}
	f.net.mu.Lock()
	f.net.notReadyTill = time.Now().Add(notReadyAfterStart)
	f.net.mu.Unlock()
	f.startOn(l)
}

// Outage stops the node for d, then restarts it.
func (f *Server) Outage(t *testing.T, d time.Duration) {
	t.Helper()
	f.Stop()
	time.Sleep(d)
	f.Restart(t)
}

// RefuseBusy makes the next n calls fail with "Server Is Too Busy".
func (f *Server) RefuseBusy(n int) {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	f.net.busy = n
}

// Deny makes the node refuse every call with "Access Denied", as
// KurrentDB answers a user without the rights a call needs.
func (f *Server) Deny() {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	f.net.denied = true
}

// BusyLeft is how many "Server Is Too Busy" replies are still to come.
func (f *Server) BusyLeft() int {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	return f.net.busy
}

// OpenConns is how many TCP connections are open to the node.
func (f *Server) OpenConns() int { return int(f.net.open.Load()) }

// fault returns the error a call gets instead of being served, if any:
// KurrentDB's RpcExceptions.ServerBusy and ServerNotReady.
func (f *Server) fault() error {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	if f.net.denied {
		return withTrailer(status.New(codes.PermissionDenied, "Access Denied"), "exception", "access-denied")
	}
	if time.Now().Before(f.net.notReadyTill) {
		return status.Error(codes.Unavailable, "Server Is Not Ready")
	}
	if f.net.busy > 0 {
		f.net.busy--
		return status.Error(codes.Unavailable, "Server Is Too Busy")
	}
	return nil
}

func (f *Server) unaryFaults(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	if err = f.fault(); err == nil {
		resp, err = h(ctx, req)
	}
	var te *trailerError
	if errors.As(err, &te) {
		_ = grpc.SetTrailer(ctx, te.md)
	}
	return resp, err
}

func (f *Server) streamFaults(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := f.fault()
	if err == nil {
		err = h(srv, ss)
	}
	var te *trailerError
	if errors.As(err, &te) {
		ss.SetTrailer(te.md)
	}
	return err
}

// countingListener counts the connections it accepted that are open.
type countingListener struct {
	net.Listener
	open *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, open: l.open}, nil
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}
