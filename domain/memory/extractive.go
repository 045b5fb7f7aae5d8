package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// ExtractiveName is what an Extractive summariser's Name returns.
const ExtractiveName = "extractive"

// Extractive defaults.
const (
	DefaultSummaryTokens   = 150
	DefaultAnswerSentences = 1
)

// recencyDecay is how much less a summary line is worth for each line
// written after it, when lines must be dropped to fit the budget.
const recencyDecay = 0.8

// ExtractiveConfig configures an Extractive summariser. Zero values are
// the documented defaults.
type ExtractiveConfig struct {
	// MaxTokens bounds the summary. Default DefaultSummaryTokens.
	MaxTokens int
	// AnswerSentences is how many of an answer's most informative
	// sentences a folded turn keeps. Default DefaultAnswerSentences.
	AnswerSentences int
}

// Extractive is a deterministic Summarizer that needs no model: the
// summary is a list of lines, one per folded turn ("Q: <the question's
// most informative sentence> A: <the answer's>"), after the lines of the
// previous summary. Sentences are ranked by their distinct terms
// (words, and character bigrams in Korean, Chinese and Japanese, with
// numbers weighing double) weighted by how rare they are in their text.
// When the lines exceed MaxTokens, the least valuable are first
// compressed to their most informative sentence and then dropped (see
// bound); the newest line is never dropped, only cut. It is safe for
// concurrent use.
type Extractive struct {
	cfg   ExtractiveConfig
	count TokenCounter
}

var _ Summarizer = (*Extractive)(nil)

// NewExtractive returns an Extractive summariser measuring with count.
func NewExtractive(count TokenCounter, cfg ExtractiveConfig) (*Extractive, error) {
	var errs []error
	if count == nil {
		errs = append(errs, errors.New("extractive summariser: a TokenCounter is required"))
	}
	if cfg.MaxTokens < 0 {
		errs = append(errs, fmt.Errorf("extractive summariser: MaxTokens %d is negative", cfg.MaxTokens))
	}
	if cfg.AnswerSentences < 0 {
		errs = append(errs, fmt.Errorf("extractive summariser: AnswerSentences %d is negative", cfg.AnswerSentences))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = DefaultSummaryTokens
	}
	if cfg.AnswerSentences == 0 {
		cfg.AnswerSentences = DefaultAnswerSentences
	}
	return &Extractive{cfg: cfg, count: count}, nil
}

// Name implements Summarizer.
func (e *Extractive) Name() string { return ExtractiveName }

// Summarize implements Summarizer. It fails only when ctx has ended.
func (e *Extractive) Summarize(ctx context.Context, previous string, turns []Turn) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// One line may take at most a third of the budget (all of it when it
	// is the only line), so a long turn cannot push out everything else.
	var prev []string
	for _, l := range strings.Split(previous, "\n") {
		if strings.TrimSpace(l) != "" {
			prev = append(prev, l)
		}
	}
	if len(prev)+len(turns) == 0 {
		return "", nil
	}
	lineCap := max(e.cfg.MaxTokens/min(len(prev)+len(turns), 3), 1)
	var lines []string
	for _, l := range prev {
		if l = e.fit(l, lineCap); l != "" {
			lines = append(lines, l)
		}
	}
	for _, t := range turns {
		if l := e.turnLine(t, lineCap); l != "" {
			lines = append(lines, l)
		}
	}
	return e.bound(lines), nil
}

// turnLine is a turn's summary line within limit tokens.
func (e *Extractive) turnLine(t Turn, limit int) string {
	q := truncate(strings.Join(best(t.Question, 1), " "), e.count, max(limit/3, 1))
	line := "Q: " + q
	if t.Answer != "" {
		a := strings.Join(best(t.Answer, e.cfg.AnswerSentences), " ")
		room := limit - e.count.Count(line+" A: ")
		if a = truncate(a, e.count, room); a != "" {
			line += " A: " + a
		}
	}
	if q == "" && !strings.Contains(line, " A: ") {
		return ""
	}
	return line
}

// fit returns a line of the previous summary within limit tokens: as is
// when it fits, else its most informative sentences that fit together (in
// their order), else its best sentence cut.
func (e *Extractive) fit(line string, limit int) string {
	line = strings.Join(strings.Fields(line), " ")
	if line == "" || e.count.Count(line) <= limit {
		return line
	}
	ss := splitSentences(line)
	if len(ss) == 0 {
		return ""
	}
	scores := rank(termSets(ss))
	order := make([]int, len(ss))
	for i := range order {
		order[i] = i
	}
	// Most informative first; stable, so ties keep the text's order.
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(scores[j], scores[i]) })
	keep := make([]bool, len(ss))
	used := 0
	for _, i := range order {
		if n := e.count.Count(ss[i]); used+n <= limit {
			keep[i], used = true, used+n+1
		}
	}
	var out []string
	for i, s := range ss {
		if keep[i] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return truncate(ss[order[0]], e.count, limit)
	}
	return strings.Join(out, " ")
}

// compressedMark starts a line bound has compressed to its core.
const compressedMark = "- "

// bound makes the summary fit MaxTokens. While it is too long, the least
// valuable line that still holds a whole turn ("Q: ... A: ...") is
// compressed to its core: its most informative sentence, within a sixth of
// the budget, marked "- ". Once every line but the newest is compressed,
// the least valuable is dropped; a last line alone too long is cut. A
// line's value is its informativeness among the lines, raised by how
// central it is (how much of its vocabulary the other lines share: a topic
// the conversation keeps coming back to) and discounted by its age. The
// newest line is never compressed or dropped.
func (e *Extractive) bound(lines []string) string {
	coreCap := max(e.cfg.MaxTokens/6, 1)
	ts := termSets(lines) // kept in step with lines
	for len(lines) > 1 && e.count.Count(strings.Join(lines, "\n")) > e.cfg.MaxTokens {
		scores, central := rank(ts), centrality(ts)
		value := func(i int) float64 {
			return (scores[i] + 0.1) * (1 + central[i]) * math.Pow(recencyDecay, float64(len(lines)-1-i))
		}
		pick := func(ok func(string) bool) int {
			best := -1
			for i := range len(lines) - 1 {
				if ok(lines[i]) && (best < 0 || value(i) < value(best)) {
					best = i
				}
			}
			return best
		}
		if i := pick(func(l string) bool { return !strings.HasPrefix(l, compressedMark) }); i >= 0 {
			lines[i] = compressedMark + e.core(lines[i], coreCap)
			ts[i] = terms(lines[i])
			continue
		}
		i := pick(func(string) bool { return true })
		lines = append(lines[:i], lines[i+1:]...)
		ts = append(ts[:i], ts[i+1:]...)
	}
	if len(lines) == 1 {
		lines[0] = truncate(lines[0], e.count, e.cfg.MaxTokens)
	}
	return strings.Join(lines, "\n")
}

// core returns a summary line's most informative sentence, without its
// "Q:" or "A:" label, within limit tokens.
func (e *Extractive) core(line string, limit int) string {
	var ss []string
	for _, s := range splitSentences(line) {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "Q: "), "A: ")
		if s = strings.TrimSpace(s); s != "" {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return truncate(line, e.count, limit)
	}
	scores := rank(termSets(ss))
	top := 0
	for i := range ss {
		if scores[i] > scores[top] {
			top = i
		}
	}
	return truncate(ss[top], e.count, limit)
}
