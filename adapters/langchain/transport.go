package langchain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// StatusError is an HTTP error status from the model server.
type StatusError struct {
	// StatusCode is the HTTP status, 400 or more.
	StatusCode int
	// RetryAfter is the server's Retry-After in seconds, or zero.
	RetryAfter time.Duration
	// Err is what the client library made of the response, if anything:
	// langchaingo's Ollama client returns no error at all for an error
	// status with an empty body.
	Err error
}

// Error implements error.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *StatusError) Unwrap() error { return e.Err }

// exchange records what the transport saw of one attempt's HTTP exchange.
//
// langchaingo's clients hide it: the Ollama client turns an error status
// into the body's error text (or, for an empty body, into success) and
// ignores read errors that cut a stream short; the OpenAI client turns
// every transport error into "network error: failed to reach API server"
// and a timeout into a plain string. The recorder below sees the real
// status and errors, so that retries can be decided on facts rather than
// on error strings.
type exchange struct {
	mu           sync.Mutex
	status       int
	retryAfter   time.Duration
	transportErr error // the request failed before any response
	bodyErr      error // reading the response failed before its end
}

// exchangeKey is the context key under which an attempt's *exchange is
// passed to the recorder.
type exchangeKey struct{}

// withExchange returns ctx carrying ex for the recorder.
func withExchange(ctx context.Context, ex *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

// err returns the failure the exchange recorded, if any, or nil. libErr is
// what the client library returned.
func (ex *exchange) err(libErr error) error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	switch {
	case ex.status >= http.StatusBadRequest:
		return &StatusError{StatusCode: ex.status, RetryAfter: ex.retryAfter, Err: libErr}
	case ex.transportErr != nil:
		return ex.transportErr
	case ex.bodyErr != nil:
		return fmt.Errorf("reading the response stream: %w", ex.bodyErr)
	}
	return nil
}

// recorder is an http.RoundTripper that records, into the *exchange found
// in the request's context, the response status and any transport or body
// read error. Requests without an exchange pass through untouched.
type recorder struct {
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	resp, err := r.next.RoundTrip(req)
	if ex == nil {
		return resp, err
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if err != nil {
		ex.transportErr = err
		return resp, err
	}
	ex.status = resp.StatusCode
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		ex.retryAfter = time.Duration(secs) * time.Second
	}
	resp.Body = &recordedBody{ReadCloser: resp.Body, ex: ex}
	return resp, nil
}

// recordedBody records the first read error other than io.EOF.
type recordedBody struct {
	io.ReadCloser
	ex *exchange
}

// Read implements io.Reader.
func (b *recordedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.ex.mu.Lock()
		if b.ex.bodyErr == nil {
			b.ex.bodyErr = err
		}
		b.ex.mu.Unlock()
	}
	return n, err
}

// transient reports whether a failed attempt may succeed if tried again:
// HTTP 429 and 5xx, refused or reset connections, connections closed
// before the response was complete, and network timeouts (the answer's own
// deadline is checked before this is asked).
func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode == http.StatusTooManyRequests || se.StatusCode >= http.StatusInternalServerError
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// newHTTPClient returns the client langchaingo is given: a private
// connection pool behind the recorder, and no client-wide timeout, which
// would cut long streams; each answer's context bounds it instead.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: recorder{next: http.DefaultTransport.(*http.Transport).Clone()}}
}
