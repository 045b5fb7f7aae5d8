package qdrant

import (
	"context"
	"errors"
	"math"

	"google.golang.org/grpc"
)

// errClosed is what a call gets on a closed Index.
var errClosed = errors.New("the index is closed")

// call begins one request: it returns the request's context, bounded by
// Timeout and ended by Close, and the function that ends the request. The
// qdrant client's Close clears its connection pool, so that a request
// racing it would divide by zero picking a connection; Close therefore
// first ends the requests in flight, then waits for them to return.
func (x *Index) call(ctx context.Context) (context.Context, func(), error) {
	x.mu.RLock()
	if x.closed {
		x.mu.RUnlock()
		return nil, nil, errClosed
	}
	cctx, cancel := context.WithTimeout(ctx, x.cfg.Timeout)
	stop := context.AfterFunc(x.closing, cancel)
	return cctx, func() {
		stop()
		cancel()
		x.mu.RUnlock()
	}, nil
}

// Close ends the requests in flight (they fail as unavailable), waits for
// them and closes the connection. Later calls fail as unavailable. It may
// be called more than once.
func (x *Index) Close() error {
	x.stop()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil
	}
	x.closed = true
	return x.client.Close()
}

// pointOverhead bounds what a point adds to a response beside its
// payload: its ID, score, version and framing.
const pointOverhead = 1 << 10

// recvLimit is the receive limit of a response of n points: what n
// points of at most MaxPayloadBytes of payload need (with their vectors:
// a dense one of Dimension and BM25 weights, no larger than the payload
// they come from), and never below gRPC's 4 MiB default.
func (x *Index) recvLimit(n int, vectors bool) grpc.CallOption {
	per := int64(x.cfg.MaxPayloadBytes + pointOverhead)
	if vectors {
		per += int64(4*x.cfg.Dimension + x.cfg.MaxPayloadBytes)
	}
	return grpc.MaxCallRecvMsgSize(int(min(max(int64(n)*per, 4<<20), math.MaxInt32)))
}
