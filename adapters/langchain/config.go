package langchain

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"
)

// Providers a Config may name.
const (
	// ProviderOllama talks to an Ollama server's /api/chat.
	ProviderOllama = "ollama"
	// ProviderOpenAI talks to OpenAI or any server with an OpenAI-compatible
	// /chat/completions endpoint (vLLM, llama.cpp server, LiteLLM, ...).
	ProviderOpenAI = "openai"
)

// Defaults applied to zero Config fields.
const (
	// DefaultOllamaURL is the BaseURL used for Ollama when none is set.
	DefaultOllamaURL = "http://localhost:11434"
	// DefaultOpenAIURL is the BaseURL used for OpenAI when none is set.
	DefaultOpenAIURL = "https://api.openai.com/v1"
	// DefaultTimeout bounds one whole answer, retries included.
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxRetries is how often a transient failure is retried.
	DefaultMaxRetries = 2
	// DefaultRetryBackoff is the wait before the first retry; it doubles
	// for each further one.
	DefaultRetryBackoff = 500 * time.Millisecond
)

// Config says which model to call and how patiently. Zero fields take the
// documented defaults; Validate reports what cannot be defaulted. The
// settings are passed to langchaingo explicitly, so the OPENAI_* and
// OLLAMA_HOST environment variables that langchaingo would otherwise read
// have no effect.
type Config struct {
	// Provider is ProviderOllama or ProviderOpenAI. Required.
	Provider string
	// BaseURL is the server's absolute http(s) URL: for Ollama its root
	// (DefaultOllamaURL if empty), for OpenAI-compatible servers the prefix
	// before /chat/completions, usually ending in /v1 (DefaultOpenAIURL if
	// empty).
	BaseURL string
	// Model is the model's name on the server, e.g. "llama3.2". Required.
	Model string
	// APIKey is sent as a bearer token to OpenAI-compatible servers, where
	// it is required (servers that ignore it still need a non-empty value);
	// Ollama does not use it. It never appears in logs, String or errors.
	APIKey string
	// System is prepended to every prompt's own system text, for
	// deployment-wide instructions. Empty means none.
	System string
	// Timeout bounds a whole answer, from the first request to the last
	// delta, retries and backoff included. Zero means DefaultTimeout. Must
	// not be negative.
	Timeout time.Duration
	// MaxRetries is how many times a transient failure (connection refused
	// or reset, HTTP 429 or 5xx) is retried, and only while no delta has
	// been emitted. Zero means DefaultMaxRetries; a negative value disables
	// retries.
	MaxRetries int
	// RetryBackoff is the wait before the first retry, doubling for each
	// further one. Zero means DefaultRetryBackoff. Must not be negative.
	RetryBackoff time.Duration
	// Temperature is the sampling temperature, from 0 (the default: always
	// the likeliest token, steadiest for answering from documents) to 2.
	Temperature float64
}

// Validate reports every problem with c, one line each.
func (c Config) Validate() error {
	var errs []error
	problem := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("langchain config: "+format, args...))
	}
	switch c.Provider {
	case ProviderOllama, ProviderOpenAI:
	case "":
		problem("Provider is required: %q or %q", ProviderOllama, ProviderOpenAI)
	default:
		problem("Provider %q is not supported: use %q or %q", c.Provider, ProviderOllama, ProviderOpenAI)
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problem("BaseURL %q is not an absolute http or https URL", redactURL(c.BaseURL))
		}
	}
	if c.Model == "" {
		problem("Model is required")
	}
	if c.Provider == ProviderOpenAI && c.APIKey == "" {
		problem("APIKey is required for provider %q (servers that ignore it still need a non-empty value)", ProviderOpenAI)
	}
	if c.Timeout < 0 {
		problem("Timeout %s is negative", c.Timeout)
	}
	if c.RetryBackoff < 0 {
		problem("RetryBackoff %s is negative", c.RetryBackoff)
	}
	if math.IsNaN(c.Temperature) || c.Temperature < 0 || c.Temperature > 2 {
		problem("Temperature %v is outside 0 to 2", c.Temperature)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultOllamaURL
		if c.Provider == ProviderOpenAI {
			c.BaseURL = DefaultOpenAIURL
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	return c
}

// LogValue implements slog.LogValuer: the APIKey is redacted, and so is
// any password in BaseURL.
func (c Config) LogValue() slog.Value {
	key := ""
	if c.APIKey != "" {
		key = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("provider", c.Provider),
		slog.String("base_url", redactURL(c.BaseURL)),
		slog.String("model", c.Model),
		slog.String("api_key", key),
		slog.Int("system_chars", len(c.System)),
		slog.Duration("timeout", c.Timeout),
		slog.Int("max_retries", c.MaxRetries),
		slog.Duration("retry_backoff", c.RetryBackoff),
		slog.Float64("temperature", c.Temperature),
	)
}

// String describes c with the APIKey redacted, so that printing a Config
// with %v or %+v cannot leak it.
func (c Config) String() string {
	return c.LogValue().String()
}

// redactURL hides the password of a URL with user information. An
// unparsable URL is shown only if it holds no "@" that could precede a
// password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return "(unparsable URL)"
		}
		return raw
	}
	return u.Redacted()
}
