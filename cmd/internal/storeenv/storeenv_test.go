package storeenv

import (
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	const url = "esdb://127.0.0.1:2113?tls=false"
	for _, tt := range []struct {
		env     map[string]string
		want    Config
		wantErr string // part of the error, "" for none
	}{
		{map[string]string{}, Config{Kind: Postgres}, ""},
		// chatd ignores a KurrentDB URL unless told to use it; so must chatctl.
		{map[string]string{"PARLEY_KURRENTDB_URL": url}, Config{Kind: Postgres}, ""},
		{map[string]string{"PARLEY_EVENT_STORE": "postgres", "PARLEY_KURRENTDB_URL": url}, Config{Kind: Postgres}, ""},
		{map[string]string{"PARLEY_EVENT_STORE": " KurrentDB ", "PARLEY_KURRENTDB_URL": url},
			Config{Kind: KurrentDB, KurrentDBURL: url, MaxAppendSize: 256 << 20, MaxAppendEventSize: 16 << 20}, ""},
		{map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url, "PARLEY_KURRENTDB_MAX_APPEND_SIZE": "2097152", "PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE": "1048576"},
			Config{Kind: KurrentDB, KurrentDBURL: url, MaxAppendSize: 2 << 20, MaxAppendEventSize: 1 << 20}, ""},
		// KurrentDB 25.1 refuses to start with an event limit over the append limit.
		{map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url, "PARLEY_KURRENTDB_MAX_APPEND_SIZE": "2097152"},
			Config{}, "PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE (16777216) must not exceed PARLEY_KURRENTDB_MAX_APPEND_SIZE (2097152)"},
		{map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url, "PARLEY_KURRENTDB_MAX_APPEND_SIZE": "300000000"},
			Config{}, "must be a number of bytes from 1 to 268435456"},
		{map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url, "PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE": "1MiB"},
			Config{}, `PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE="1MiB" must be a number of bytes`},
		{map[string]string{"PARLEY_EVENT_STORE": "kurrentdb"}, Config{}, "needs PARLEY_KURRENTDB_URL"},
		{map[string]string{"PARLEY_EVENT_STORE": "mysql"}, Config{}, `PARLEY_EVENT_STORE="mysql": want postgres or kurrentdb`},
	} {
		got, err := FromEnv(func(k string) string { return tt.env[k] })
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("FromEnv(%v) = %v", tt.env, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("FromEnv(%v) = %v, want an error containing %q", tt.env, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("FromEnv(%v) = %+v, want %+v", tt.env, got, tt.want)
		}
	}
}
