package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/text"
)

var _ chat.Generator = (*Generator)(nil)

// ExtractiveName is what the extractive Generator's Name returns.
const ExtractiveName = "offline/extractive"

// Defaults applied to a zero Config.
const (
	// DefaultMaxSentences is how many sentences an answer quotes at most.
	DefaultMaxSentences = 3
	// DefaultMaxQuoteRunes is how long one quoted sentence may be before it
	// is clipped.
	DefaultMaxQuoteRunes = 300
)

// Config configures the extractive Generator. The zero value is valid and
// gives an unpaced generator with the defaults below.
type Config struct {
	// TokenDelay paces the stream like a model's: piece i of the answer is
	// emitted no earlier than i×TokenDelay after the first piece, counted
	// from the start so that pauses do not accumulate drift. Zero (the
	// default) emits as fast as emit returns. Must not be negative.
	TokenDelay time.Duration
	// MaxSentences is how many sentences an answer quotes at most. Zero
	// means DefaultMaxSentences. Must not be negative.
	MaxSentences int
	// MaxQuoteRunes clips each quoted sentence to this many runes. Zero
	// means DefaultMaxQuoteRunes. Must not be negative.
	MaxQuoteRunes int
}

// Validate reports every problem with c, one line each.
func (c Config) Validate() error {
	var errs []error
	if c.TokenDelay < 0 {
		errs = append(errs, fmt.Errorf("offline config: TokenDelay %s is negative", c.TokenDelay))
	}
	if c.MaxSentences < 0 {
		errs = append(errs, fmt.Errorf("offline config: MaxSentences %d is negative", c.MaxSentences))
	}
	if c.MaxQuoteRunes < 0 {
		errs = append(errs, fmt.Errorf("offline config: MaxQuoteRunes %d is negative", c.MaxQuoteRunes))
	}
	return errors.Join(errs...)
}

// Generator is the extractive chat.Generator used when no language model
// is configured. It is safe for concurrent use.
type Generator struct {
	cfg Config
}

// New validates cfg, applies its defaults and returns a Generator.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSentences == 0 {
		cfg.MaxSentences = DefaultMaxSentences
	}
	if cfg.MaxQuoteRunes == 0 {
		cfg.MaxQuoteRunes = DefaultMaxQuoteRunes
	}
	return &Generator{cfg: cfg}, nil
}

// Name returns "offline/extractive".
func (g *Generator) Name() string { return ExtractiveName }

// Generate streams Answer(p) in the pieces SplitTokens gives, paced by
// Config.TokenDelay. It checks ctx before every piece and while waiting, and
// returns ctx.Err() as soon as ctx ends; it returns emit's error as is, and
// emits nothing after either.
func (g *Generator) Generate(ctx context.Context, p chat.Prompt, emit func(delta string) error) error {
	pieces := SplitTokens(g.Answer(p))
	start := time.Now()
	for i, piece := range pieces {
		var err error
		if i > 0 && g.cfg.TokenDelay > 0 {
			err = sleepUntil(ctx, start.Add(time.Duration(i)*g.cfg.TokenDelay))
		} else {
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
		if err := emit(piece); err != nil {
			return err
		}
	}
	return nil
}

// sleepUntil waits until t or until ctx ends, whichever is first, and
// returns ctx.Err() in the second case.
func sleepUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// phrases are the fixed parts of an answer, in one language.
type phrases struct {
	quoting   string // header of an answer quoting matching passages
	noOverlap string // header when passages exist but none shares a word with the question
	noMatch   string // the whole answer's first line when retrieval found nothing relevant
	earlier   string // introduces a quoted earlier sentence; %s is the quote
	sources   string // introduces the list of cited passages
	// legacy are first lines earlier versions wrote, so that ownAnswer
	// still knows them in a conversation's history.
	legacy []string
}

// english and korean are the languages an answer is written in; the
// question's script picks one.
var (
	english = phrases{
		quoting:   "No language model is configured, so this answer quotes the retrieved passages that best match the question.",
		noOverlap: "No language model is configured, and no retrieved passage shares words with the question. The top passage begins:",
		noMatch:   "I found nothing relevant to this question in the documents, and no language model is configured to answer without them.",
		earlier:   "Earlier in this conversation: \"%s\"",
		sources:   "Sources: ",
		legacy:    []string{"No documents matched this question, and no language model is configured to answer without them."},
	}
	korean = phrases{
		quoting:   "언어 모델이 설정되어 있지 않아, 질문과 가장 관련 있는 검색 문서의 문장을 인용합니다.",
		noOverlap: "언어 모델이 설정되어 있지 않으며, 질문과 겹치는 단어가 있는 검색 문서가 없습니다. 가장 상위 문서의 첫 부분입니다:",
		noMatch:   "질문과 관련된 문서를 찾지 못했습니다. 문서 없이 답변할 언어 모델도 설정되어 있지 않습니다.",
		earlier:   "이전 대화에서: \"%s\"",
		sources:   "출처: ",
		legacy:    []string{"질문과 일치하는 문서가 없으며, 문서 없이 답변할 언어 모델이 설정되어 있지 않습니다."},
	}
)

// languageOf picks Korean phrases for a question text.IsKorean calls
// Korean (a fifth of its letters Hangul is enough: it may name English
// terms) and English phrases otherwise.
func languageOf(question string) phrases {
	if text.IsKorean(question) {
		return korean
	}
	return english
}

// ownAnswer reports whether an assistant turn is one of this generator's
// own answers, whose fixed phrases must not be quoted back as if they were
// part of the conversation.
func ownAnswer(content string) bool {
	// The chat pipeline may have put its notice before the answer.
	for _, notice := range []string{chat.NoSourcesNotice, chat.NoSourcesNoticeKo} {
		content = strings.TrimLeftFunc(strings.TrimPrefix(content, notice), unicode.IsSpace)
	}
	for _, l := range []phrases{english, korean} {
		for _, prefix := range append([]string{l.quoting, l.noOverlap, l.noMatch}, l.legacy...) {
			if strings.HasPrefix(content, prefix) {
				return true
			}
		}
	}
	return false
}

// candidate is one sentence that may be quoted.
type candidate struct {
	source int // index of the passage (or turn) it comes from
	order  int // position among all candidates, for reading order and ties
	text   string
	feat   map[string]float64
	score  float64
}

// candidates splits texts into sentences, leaving out headings and
// dropping repeats (overlapping chunks often share sentences), and scores
// them against question.
func candidates(question string, texts []string) []candidate {
	var cs []candidate
	seen := make(map[string]bool)
	for i, t := range texts {
		for _, s := range text.Sentences(withoutHeadings(t)) {
			key := normalize(s)
			if seen[key] {
				continue
			}
			seen[key] = true
			cs = append(cs, candidate{source: i, order: len(cs), text: s, feat: features(s)})
		}
	}
	pool := make([]map[string]float64, len(cs))
	for i, c := range cs {
		pool[i] = c.feat
	}
	sc := newScorer(question, pool)
	for i := range cs {
		cs[i].score = sc.score(cs[i].feat)
	}
	return cs
}

// Answer returns the full text Generate streams for p. It is deterministic.
//
// With passages, it quotes up to MaxSentences content sentences (never a
// heading) scoring at least half as well as the best one, in reading
// order, each followed by its passage's citation ([1] for p.Context[0]),
// then lists the cited sources: only passages with a quoted sentence are
// cited. If no sentence shares a term with the question (a passage a
// dense retriever found by meaning), it quotes the first content sentence
// of the top passage and says so. Without passages, which is what
// retrieval gives when nothing is relevant enough, it says, in the
// question's language, that it found nothing relevant, cites nothing, and
// quotes the earlier sentence of p.Summary or p.History most relevant to
// the question, if any is.
//
// Passages are untrusted: the answer never carries their Markdown images
// or links, HTML tags or URLs (chat.StripMarkup removes them), so a reader's
// client is never made to fetch anything a document names.
func (g *Generator) Answer(p chat.Prompt) string {
	lang := languageOf(p.Question)
	if len(p.Context) == 0 {
		return chat.StripMarkup(g.noDocuments(lang, p))
	}
	texts := make([]string, len(p.Context))
	for i, passage := range p.Context {
		texts[i] = chat.StripMarkup(passage.Text)
	}
	cs := candidates(p.Question, texts)
	if len(cs) == 0 {
		return lang.noMatch
	}

	ranked := slices.Clone(cs)
	slices.SortStableFunc(ranked, func(a, b candidate) int { return cmp.Compare(b.score, a.score) })
	best := ranked[0].score
	var picked []candidate
	header := lang.quoting
	if best == 0 {
		header = lang.noOverlap
		picked = cs[:1]
	} else {
		for _, c := range ranked {
			if len(picked) == g.cfg.MaxSentences || c.score < best/2 {
				break
			}
			picked = append(picked, c)
		}
		slices.SortFunc(picked, func(a, b candidate) int { return cmp.Compare(a.order, b.order) })
	}

	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n\n")
	var cited []int
	for i, c := range picked {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s [%d]", clip(c.text, g.cfg.MaxQuoteRunes), c.source+1)
		if !slices.Contains(cited, c.source) {
			cited = append(cited, c.source)
		}
	}
	var sources []string
	for _, i := range cited {
		name := cmp.Or(p.Context[i].Document, p.Context[i].ChunkID)
		switch title := strings.Join(strings.Fields(p.Context[i].Title), " "); {
		case title == "" || title == name:
		case name == "":
			name = title
		default:
			name = title + " (" + name + ")"
		}
		if name = strings.Join(strings.Fields(name), " "); name != "" {
			sources = append(sources, fmt.Sprintf("[%d] %s", i+1, name))
		}
	}
	if len(sources) > 0 {
		b.WriteString("\n\n")
		b.WriteString(lang.sources)
		b.WriteString(strings.Join(sources, ", "))
	}
	return chat.StripMarkup(b.String())
}

// noDocuments is the answer when no passage was retrieved.
func (g *Generator) noDocuments(lang phrases, p chat.Prompt) string {
	texts := []string{p.Summary}
	for _, t := range p.History {
		if t.Role == chat.RoleAssistant && ownAnswer(t.Content) {
			continue
		}
		texts = append(texts, t.Content)
	}
	question := normalize(p.Question)
	var best *candidate
	cs := candidates(p.Question, texts)
	for i := range cs {
		c := &cs[i]
		// Ties go to the most recent sentence; the question itself, if the
		// caller left it in the history, is not an earlier sentence.
		if c.score > 0 && (best == nil || c.score >= best.score) && normalize(c.text) != question {
			best = c
		}
	}
	if best == nil {
		return lang.noMatch
	}
	return lang.noMatch + "\n\n" + fmt.Sprintf(lang.earlier, clip(best.text, g.cfg.MaxQuoteRunes))
}
