package stack

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/projections"
)

// Serve runs chatd until ctx ends, then shuts down: it stops accepting,
// lets streaming answers finish for ShutdownGrace and fails the rest (their
// terminal events written), delivers those events, closes sockets with 1001
// and waits for every goroutine it started. ready, when not nil, is called
// with the listening address once chatd accepts connections.
func (s *Server) Serve(ctx context.Context, ready func(addr net.Addr)) error {
	defer s.close()
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set PARLEY_HTTP_ADDR to a free address)", s.cfg.HTTPAddr, err)
	}

	// bg runs until the very end: the hub must deliver the answers' last
	// events while the service drains. svcCtx ends first.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	svcCtx, stopSvc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSvc()
	var wg sync.WaitGroup
	defer wg.Wait()
	fatal := make(chan error, 4)
	goRun := func(name string, run func(context.Context) error, ctx context.Context) {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				fatal <- fmt.Errorf("%s stopped: %w", name, err)
			}
		})
	}

	goRun("log subscription", s.feed.Run, bg)
	goRun("WebSocket hub", s.hub.Run, bg)
	goRun("connection leases", s.limits.Run, bg)
	for _, r := range s.runners {
		// A projection that stops (an event it cannot decode) does not stop
		// chatd: it serves on, and /readyz reports it (degraded).
		wg.Go(func() {
			if err := r.Run(bg); err != nil && bg.Err() == nil {
				s.log.Error("projection stopped; chatd serves on without it (see /readyz, and chatctl projections status)",
					"projection", r.Projection.Name(), "error", err)
			}
		})
	}
	if len(s.runners) > 0 {
		wg.Go(func() { s.reportLag(bg) })
	}
	if s.index != nil {
		goRun("retrieval index refresh", s.index, bg)
	}
	wg.Go(func() { s.sweepTickets(bg) })
	if s.cfg.Retention > 0 {
		wg.Go(func() { s.retain(bg) })
	}
	svcDone := make(chan struct{})
	wg.Go(func() {
		defer close(svcDone)
		_ = s.svc.Run(svcCtx)
	})

	select {
	case <-s.hub.Ready():
	case err := <-fatal:
		return err
	case <-ctx.Done():
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	n, err := s.svc.RecoverInterrupted(rctx, s.cfg.RecoverIdle)
	cancel()
	if err != nil {
		s.log.Error("recovering interrupted answers failed; they stay open until the next start", "error", err)
	} else if n > 0 {
		s.log.Info("failed answers interrupted by a crash", "answers", n)
	}

	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Serve(ln) }() // owned: serve waits for httpDone below
	s.log.Info("chatd listening", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case runErr = <-fatal:
		s.log.Error("shutting down after a failure", "error", runErr)
	case err := <-httpDone:
		runErr = fmt.Errorf("http server: %w", err)
		httpDone <- nil
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// 1. Stop accepting; REST requests in flight finish.
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown", "error", err)
	}
	<-httpDone
	// 2. Answers finish within the grace period or are failed.
	stopSvc()
	select {
	case <-svcDone:
	case <-sctx.Done():
		s.log.Error("answers did not end before PARLEY_SHUTDOWN_TIMEOUT")
	}
	// 3. Their last events reach the sockets, which then close with 1001.
	if head, err := s.store.HeadPosition(sctx); err == nil {
		if err := s.hub.WaitFor(sctx, head); err != nil {
			s.log.Warn("shutdown: not every event reached the sockets", "error", err)
		}
	}
	if err := s.gateway.Shutdown(sctx); err != nil {
		s.log.Warn("shutdown: sockets did not close in time", "error", err)
	}
	// 4. Background work stops; deferred wg.Wait waits for it.
	stopBG()
	s.log.Info("chatd stopped")
	return runErr
}

// every calls f first after first, then every period, until ctx ends:
// the loop of chatd's periodic background work.
func every(ctx context.Context, first, period time.Duration, f func(context.Context)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(ctx)
		t.Reset(period)
	}
}

// reportLag sets the projections' lag metrics every five seconds, against
// the head the log feed has read: the store's exact head costs a read of
// pg_locks on PostgreSQL (44 ms under the stream benchmark's load).
func (s *Server) reportLag(ctx context.Context) {
	every(ctx, 5*time.Second, 5*time.Second, func(ctx context.Context) {
		head, ok := s.feed.Head()
		if !ok {
			return // not following the log yet, or stopped: nothing to measure against
		}
		for _, r := range s.runners {
			if st, err := r.StatusAt(ctx, head); err == nil {
				s.metrics.SetProjectionLag(st.Name, st.Lag)
			}
		}
	})
}

func (s *Server) sweepTickets(ctx context.Context) {
	every(ctx, time.Minute, time.Minute, func(ctx context.Context) {
		if _, err := s.tickets.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweeping expired tickets failed", "error", err)
		}
	})
}

// projectionsStopped is the readiness check of the projections this
// process runs: an error naming those stopped by an event they cannot
// apply.
func (s *Server) projectionsStopped(ctx context.Context) error {
	var stopped []string
	for _, r := range s.runners {
		if st := r.Progress(); st.State == projections.StateFailed {
			stopped = append(stopped, st.Name+": "+st.LastError)
		}
	}
	if len(stopped) > 0 {
		return fmt.Errorf("stopped: %s", strings.Join(stopped, "; "))
	}
	return nil
}
