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
		{map[string]string{"PARLEY_EVENT_STORE": " KurrentDB ", "PARLEY_KURRENTDB_URL": url}, Config{Kind: KurrentDB, KurrentDBURL: url}, ""},
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
