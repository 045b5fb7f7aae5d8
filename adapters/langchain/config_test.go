package langchain_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/langchain"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  langchain.Config
		want []string // substrings, one per reported problem; nil for valid
	}{
		{name: "ollama minimal", cfg: langchain.Config{Provider: "ollama", Model: "llama3.2"}},
		{name: "openai minimal", cfg: langchain.Config{Provider: "openai", Model: "gpt-4o-mini", APIKey: "k"}},
		{
			name: "all set",
			cfg: langchain.Config{Provider: "openai", BaseURL: "http://vllm:8000/v1", Model: "m", APIKey: "k",
				Timeout: time.Minute, MaxRetries: -1, RetryBackoff: time.Second, Temperature: 2},
		},
		{name: "empty", cfg: langchain.Config{}, want: []string{"Provider is required", "Model is required"}},
		{name: "unknown provider", cfg: langchain.Config{Provider: "anthropic", Model: "m"}, want: []string{`Provider "anthropic" is not supported`}},
		{name: "openai needs a key", cfg: langchain.Config{Provider: "openai", Model: "m"}, want: []string{`APIKey is required for provider "openai"`}},
		{
			name: "bad values",
			cfg: langchain.Config{Provider: "ollama", Model: "m", BaseURL: "localhost:11434",
				Timeout: -time.Second, RetryBackoff: -time.Millisecond, Temperature: 2.5},
			want: []string{`BaseURL "localhost:11434" is not an absolute http or https URL`, "Timeout -1s is negative",
				"RetryBackoff -1ms is negative", "Temperature 2.5 is outside 0 to 2"},
		},
		{name: "NaN temperature", cfg: langchain.Config{Provider: "ollama", Model: "m", Temperature: math.NaN()}, want: []string{"Temperature NaN"}},
		{
			name: "unparsable URL with a password is not echoed",
			cfg:  langchain.Config{Provider: "ollama", Model: "m", BaseURL: "http://user:hunter2@[bad"},
			want: []string{"BaseURL \"(unparsable URL)\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.want))
			}
			if lines := strings.Split(err.Error(), "\n"); len(lines) != len(tt.want) {
				t.Errorf("Validate() reported %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Validate() = %q leaks a password", err)
			}
			if _, err := langchain.NewGenerator(tt.cfg); err == nil {
				t.Error("NewGenerator accepted a config Validate rejects")
			}
		})
	}
}

func TestConfigNeverShowsSecrets(t *testing.T) {
	cfg := langchain.Config{Provider: "openai", BaseURL: "https://bob:hunter2@llm.internal/v1", Model: "m", APIKey: "sk-very-secret"}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "llm", cfg)
	shown := map[string]string{
		"slog":      logged.String(),
		"String":    cfg.String(),
		"%v":        fmt.Sprintf("%v", cfg),
		"%+v":       fmt.Sprintf("%+v", cfg),
		"Validate":  fmt.Sprint(langchain.Config{Provider: "openai", BaseURL: cfg.BaseURL + "%zz", APIKey: cfg.APIKey}.Validate()),
		"generator": newTestGenerator(t, cfg).Name(),
	}
	for how, s := range shown {
		for _, secret := range []string{"sk-very-secret", "hunter2"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows %q: %s", how, secret, s)
			}
		}
	}
	for _, want := range []string{`"api_key":"REDACTED"`, `"model":"m"`, `"provider":"openai"`, `"base_url":"https://bob:xxxxx@llm.internal/v1"`} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log line %s lacks %s", logged.String(), want)
		}
	}
}
