package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/parleychat/parley/domain/chat"
)

var _ chat.Generator = (*Scripted)(nil)

// ScriptedName is what a Scripted generator's Name returns by default.
const ScriptedName = "offline/scripted"

// ScriptedConfig configures a Scripted generator. The zero value is valid:
// an empty answer, emitted at once.
type ScriptedConfig struct {
	// Text is the answer, streamed in the pieces SplitTokens gives (invalid
	// UTF-8 replaced by U+FFFD). Ignored when Token is set.
	Text string
	// Token, when set, produces the answer instead of Text: Token(i) is
	// piece i, for i from 0 to Count-1. It must be safe for concurrent use
	// if Generate is called concurrently. Useful for long benchmark answers
	// that should not be held in memory.
	Token func(i int) string
	// Count is how many pieces Token produces. It must be zero without Token.
	Count int
	// Rate is the pace in tokens (pieces) per second: piece i is emitted
	// (i+1)/Rate seconds after Generate starts. Due times are computed from
	// the start, not from the previous piece, so the pace does not drift: a
	// consumer that falls behind gets the overdue pieces at once until it
	// has caught up. Zero (the default) emits without pausing. Must not be
	// negative, NaN or infinite.
	Rate float64
	// Err, when set, makes Generate fail: after emitting FailAfter pieces
	// (or the whole answer, if it is shorter), Generate returns Err as is.
	// Use it to exercise the AnswerFailed path. Nil (the default) never
	// fails.
	Err error
	// FailAfter is how many pieces are emitted before Err is returned; zero
	// fails before the first piece. It must be zero without Err.
	FailAfter int
	// Name is what Name returns. Empty means ScriptedName.
	Name string
}

// Validate reports every problem with c, one line each.
func (c ScriptedConfig) Validate() error {
	var errs []error
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("scripted config: Rate %v must be a finite number of tokens per second, zero or more", c.Rate))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("scripted config: Count %d is negative", c.Count))
	}
	if c.Token == nil && c.Count != 0 {
		errs = append(errs, fmt.Errorf("scripted config: Count %d is set without a Token func", c.Count))
	}
	if c.FailAfter < 0 {
		errs = append(errs, fmt.Errorf("scripted config: FailAfter %d is negative", c.FailAfter))
	}
	if c.Err == nil && c.FailAfter != 0 {
		errs = append(errs, fmt.Errorf("scripted config: FailAfter %d is set without an Err to fail with", c.FailAfter))
	}
	return errors.Join(errs...)
}

// Scripted is a chat.Generator that replays a fixed answer at a fixed rate,
// for tests and benchmarks. It is safe for concurrent use: each Generate
// call paces itself independently.
type Scripted struct {
	cfg    ScriptedConfig
	pieces []string // the answer, when cfg.Token is nil
}

// NewScripted validates cfg and returns a Scripted generator.
func NewScripted(cfg ScriptedConfig) (*Scripted, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scripted{cfg: cfg}
	if cfg.Token == nil {
		s.pieces = SplitTokens(strings.ToValidUTF8(cfg.Text, "\uFFFD"))
	}
	return s, nil
}

// Name returns ScriptedConfig.Name, or ScriptedName if it is empty.
func (s *Scripted) Name() string { return cmp.Or(s.cfg.Name, ScriptedName) }

// Generate emits the scripted answer at the configured rate, ignoring p.
// It returns ctx.Err() as soon as ctx ends, emit's error as is, or the
// configured Err after FailAfter pieces, and emits nothing after any of
// them.
func (s *Scripted) Generate(ctx context.Context, _ chat.Prompt, emit func(delta string) error) error {
	n, piece := len(s.pieces), func(i int) string { return s.pieces[i] }
	if s.cfg.Token != nil {
		n, piece = s.cfg.Count, s.cfg.Token
	}
	start := time.Now()
	for i := range n {
		if s.cfg.Err != nil && i == s.cfg.FailAfter {
			return s.cfg.Err
		}
		var err error
		if s.cfg.Rate > 0 {
			err = sleepUntil(ctx, start.Add(s.due(i)))
		} else {
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
		if err := emit(piece(i)); err != nil {
			return err
		}
	}
	return s.cfg.Err
}

// due is how long after the start piece i is due.
func (s *Scripted) due(i int) time.Duration {
	return time.Duration(float64(i+1) * float64(time.Second) / s.cfg.Rate)
}
