package jwtauth

import "log/slog"

// Redacted holds a secret value, usually a bearer token or an Authorization
// header, that must never be printed. It logs, formats and prints as
// "[REDACTED]"; convert it back with string(r) where the real value is needed.
type Redacted string

const redacted = "[REDACTED]"

// LogValue implements slog.LogValuer so that slog attributes holding r print
// "[REDACTED]".
func (Redacted) LogValue() slog.Value { return slog.StringValue(redacted) }

// String returns "[REDACTED]", so fmt's %v, %s and %q do not print the value.
func (Redacted) String() string { return redacted }

// GoString returns "[REDACTED]", so fmt's %#v does not print the value.
func (Redacted) GoString() string { return redacted }
