package chatdenv

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
)

// secret is a valid PARLEY_JWT_SECRET.
const secret = "a-test-secret-that-is-32-bytes-long"

// parse reads env as chatd does without flags.
func parse(env map[string]string) (Config, error) {
	cfg, problems := FromEnv(func(k string) string { return env[k] })
	problems = append(problems, cfg.Check()...)
	return cfg, Invalid(problems)
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"short secret", map[string]string{"PARLEY_JWT_SECRET": "short"}, []string{"PARLEY_JWT_SECRET is 5 bytes"}},
		{"several problems at once", map[string]string{"PARLEY_HTTP_ADDR": "nohost", "PARLEY_ANSWER_TIMEOUT": "soon", "PARLEY_LLM_PROVIDER": "gpt"},
			[]string{"listen address", "PARLEY_ANSWER_TIMEOUT", "PARLEY_LLM_PROVIDER"}},
		{"bad database URL", map[string]string{"PARLEY_DATABASE_URL": "mysql://x"}, []string{"PARLEY_DATABASE_URL"}},
		{"ollama without a model", map[string]string{"PARLEY_LLM_PROVIDER": "ollama"}, []string{"LLM settings"}},
		{"an origin with a path, and a bad PARLEY_WEB", map[string]string{"PARLEY_ALLOWED_ORIGINS": "https://ok.example, https://app.example/chat", "PARLEY_WEB": "maybe"},
			[]string{`PARLEY_ALLOWED_ORIGINS: "https://app.example/chat"`, `PARLEY_WEB="maybe"`}},
		{"a log read interval out of range", map[string]string{"PARLEY_LOG_READ_INTERVAL": "1s"}, []string{"PARLEY_LOG_READ_INTERVAL=1s: between 1ms and 100ms"}},
		{"a retention interval under a second", map[string]string{"PARLEY_RETENTION": "30d", "PARLEY_RETENTION_INTERVAL": "10ms"},
			[]string{"PARLEY_RETENTION_INTERVAL=10ms must be at least 1s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "short") && tc.name == "short secret" {
				t.Errorf("error %q repeats the secret", err)
			}
		})
	}
	cfg, err := parse(nil)
	if err != nil || cfg.HTTPAddr != ":8080" || !cfg.DevSecret || !cfg.Projections || !cfg.Web || cfg.Instance == "" || cfg.LogReadEvery != postgres.DefaultReadInterval || cfg.RetentionEvery != time.Hour {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
}

// TestConfigLogLine: the start-up line names the settings an operator
// tunes and none of the secrets.
func TestConfigLogLine(t *testing.T) {
	env := map[string]string{
		"PARLEY_JWT_SECRET":       secret,
		"PARLEY_DATABASE_URL":     "postgres://parley:db-password@db:5432/parley",
		"PARLEY_CHATLOG_INTERVAL": "250ms",
		"PARLEY_RETENTION":        "30d",
	}
	cfg, err := parse(env)
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("chatd starting", "config", cfg)
	line := buf.String()
	for _, want := range []string{`"chatlog_interval":"250ms"`, `"chunk_commit":"async"`, `"jwt_secret":"set"`, `"retention":"30d"`, `"retention_interval":"1h0m0s"`} {
		if !strings.Contains(line, want) {
			t.Errorf("config line %s lacks %s", line, want)
		}
	}
	for _, secret := range []string{secret, "db-password"} {
		if strings.Contains(line, secret) {
			t.Errorf("config line %s shows a secret", line)
		}
	}
}
