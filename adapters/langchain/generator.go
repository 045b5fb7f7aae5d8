package langchain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tmc/langchaingo/embeddings"
	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/ollama"
	"github.com/tmc/langchaingo/llms/openai"

	"github.com/parleychat/parley/domain/chat"
)

var _ chat.Generator = (*Generator)(nil)

// model is what both langchaingo clients provide.
type model interface {
	llms.Model
	embeddings.EmbedderClient
}

// Generator is a chat.Generator over a langchaingo chat model. It is safe
// for concurrent use.
type Generator struct {
	cfg   Config // defaults applied
	name  string
	model model
}

// NewGenerator validates cfg, applies its defaults and returns a Generator
// for its provider. It makes no request: an unreachable server or unknown
// model shows on the first Generate.
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newModel(cfg)
	if err != nil {
		return nil, fmt.Errorf("langchain %s/%s: new generator: %w", cfg.Provider, cfg.Model, err)
	}
	return &Generator{cfg: cfg, name: cfg.Provider + "/" + cfg.Model, model: m}, nil
}

// newModel builds the langchaingo client for a valid, defaulted cfg. Every
// setting is passed explicitly so that langchaingo's environment variables
// (OPENAI_API_KEY, OPENAI_BASE_URL, OLLAMA_HOST, ...) are never consulted,
// and BaseURL is validated beforehand because ollama.WithServerURL calls
// log.Fatal on a URL it cannot parse.
func newModel(cfg Config) (model, error) {
	switch cfg.Provider {
	case ProviderOllama:
		return ollama.New(
			ollama.WithServerURL(cfg.BaseURL),
			ollama.WithModel(cfg.Model),
			ollama.WithHTTPClient(newHTTPClient()),
		)
	case ProviderOpenAI:
		return openai.New(
			openai.WithBaseURL(cfg.BaseURL),
			openai.WithModel(cfg.Model),
			openai.WithEmbeddingModel(cfg.Model),
			openai.WithToken(cfg.APIKey),
			openai.WithHTTPClient(newHTTPClient()),
		)
	}
	return nil, fmt.Errorf("provider %q is not supported", cfg.Provider)
}

// Name returns "provider/model", e.g. "ollama/llama3.2".
func (g *Generator) Name() string { return g.name }

// Generate sends the messages BuildMessages makes of p and streams the
// model's answer to emit, chunk by chunk as the server sends them.
//
// The whole answer, retries included, is bounded by Config.Timeout; when it
// runs out, the error wraps context.DeadlineExceeded. Transient failures
// (connection refused or reset, HTTP 429 and 5xx) are retried up to
// Config.MaxRetries times, waiting Config.RetryBackoff and then twice as
// long each time (or the server's Retry-After, if longer), but only while
// no delta has been emitted.
//
// It returns ctx.Err() when ctx ends and emit's error when emit fails, as
// they are; other failures are wrapped as "langchain provider/model:
// generate: ...". No delta is emitted after Generate returns.
func (g *Generator) Generate(ctx context.Context, p chat.Prompt, emit func(delta string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msgs := BuildMessages(g.cfg.System, p)
	answerCtx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	s := &stream{emit: emit}
	defer s.close()

	// ended returns the error to report when ctx or the answer's deadline
	// has ended, or nil.
	ended := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if answerCtx.Err() != nil {
			return g.wrap(fmt.Errorf("no complete answer within %s: %w", g.cfg.Timeout, context.DeadlineExceeded))
		}
		return nil
	}

	backoff := g.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := g.attempt(answerCtx, msgs, s)
		if err == nil {
			// langchaingo's OpenAI client stops reading when the context
			// ends and reports what it had as a complete answer.
			return ended()
		}
		if emitErr := s.emitError(); emitErr != nil {
			return emitErr
		}
		if endErr := ended(); endErr != nil {
			return endErr
		}
		// Retrying is only safe before the first delta: emitted deltas have
		// already been forwarded (to the room's event stream and to every
		// client watching it) and cannot be taken back, and a second
		// attempt would not reproduce them, so the answer would be a splice
		// of two different generations. Once a delta is out, a failure is
		// final and the caller records the partial answer as failed.
		if s.emitted() || !transient(err) || attempt > g.cfg.MaxRetries {
			if attempt > 1 {
				err = fmt.Errorf("attempt %d of %d: %w", attempt, g.cfg.MaxRetries+1, err)
			}
			return g.wrap(err)
		}
		wait := backoff
		if se := (*StatusError)(nil); errors.As(err, &se) && se.RetryAfter > wait {
			wait = se.RetryAfter
		}
		timer := time.NewTimer(wait)
		select {
		case <-answerCtx.Done():
			timer.Stop()
			return ended()
		case <-timer.C:
		}
		backoff *= 2
	}
}

// attempt makes one request and streams its deltas into s.
func (g *Generator) attempt(ctx context.Context, msgs []llms.MessageContent, s *stream) error {
	ex := &exchange{}
	resp, err := g.model.GenerateContent(withExchange(ctx, ex), msgs,
		llms.WithTemperature(g.cfg.Temperature),
		llms.WithStreamingFunc(s.send),
	)
	if recorded := ex.err(err); recorded != nil {
		return recorded
	}
	if err != nil {
		return err
	}
	if len(resp.Choices) == 0 {
		return errors.New("the response has no choices")
	}
	// langchaingo's clients report success when a stream simply stops
	// early. Ollama's final content is then empty while the deltas were
	// not, because it is only filled from the closing "done" message.
	// OpenAI's lacks a finish reason, which every compatible server sends
	// in its last chunk; an error event in mid-stream looks the same, as the
	// client skips events without choices.
	choice := resp.Choices[0]
	if got, sent := choice.Content, s.text(); got != sent {
		return fmt.Errorf("the stream ended before the model finished (%d bytes streamed, %d in the final message)", len(sent), len(got))
	}
	if g.cfg.Provider == ProviderOpenAI && choice.StopReason == "" {
		return fmt.Errorf("the stream ended without a finish reason, so the answer may be cut short (%d bytes streamed)", len(s.text()))
	}
	return nil
}

// wrap adds the generator's identity to err.
func (g *Generator) wrap(err error) error {
	return fmt.Errorf("langchain %s: generate: %w", g.name, err)
}

// stream forwards langchaingo's chunks to emit, remembers what went out,
// and refuses to emit once closed, so nothing is emitted after Generate
// returns even if a client library were to call its streaming func late.
type stream struct {
	emit func(string) error

	mu      sync.Mutex
	closed  bool
	sent    strings.Builder
	emitErr error
}

// errClosed is returned to langchaingo by a stream that has been closed.
var errClosed = errors.New("langchain: stream closed: Generate has returned")

// send is the llms.WithStreamingFunc callback.
func (s *stream) send(ctx context.Context, chunk []byte) error {
	if len(chunk) == 0 {
		return nil // role-only and usage chunks of OpenAI streams
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.emitErr != nil {
		return s.emitErr
	}
	if err := s.emit(string(chunk)); err != nil {
		s.emitErr = err
		return err
	}
	s.sent.Write(chunk)
	return nil
}

// close makes later sends fail.
func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// emitted reports whether any delta went out.
func (s *stream) emitted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent.Len() > 0
}

// text returns everything emitted so far.
func (s *stream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent.String()
}

// emitError returns the error emit failed with, if it did.
func (s *stream) emitError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitErr
}
