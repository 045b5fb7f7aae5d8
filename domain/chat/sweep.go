package chat

import (
	"context"
	"time"
)

// sweep runs until ctx ends, every SweepInterval failing the answers left
// open (see Config.SweepInterval): this instance's whose pipeline could
// not write their end and has given up, and other instances' idle for
// RecoverIdle. It is the backstop of pipeline.end, so a room is never left
// busy by an answer nobody will end, without a restart.
func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SweepInterval)
		n, err := s.recoverOpen(sctx, s.cfg.RecoverIdle, s.cfg.AnswerTimeout)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("sweeper: could not look for answers left open; trying again later", "error", err, "retry_in", s.cfg.SweepInterval)
		case n > 0:
			s.log.Info("sweeper: failed answers left open", "answers", n)
		}
	}
}
