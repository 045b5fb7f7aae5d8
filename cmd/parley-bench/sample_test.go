package main

import (
	"testing"
	"time"
)

func TestStatBusy(t *testing.T) {
	tests := []struct {
		line string
		want time.Duration
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// guest time is part of user, guest_nice of nice.
		{"cpu  100 20 30 5000 70 1 2 3 40 10", 156 * 10 * time.Millisecond},
		{"cpu  100 20 30 5000 70 1 2 3", 156 * 10 * time.Millisecond},
		{"cpu  100 20 30 5000", 150 * 10 * time.Millisecond}, // older kernels
		{"", 0},
	}
	for _, tt := range tests {
		if got := statBusy(tt.line); got != tt.want {
			t.Errorf("statBusy(%q) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

func TestStatCPU(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
	line := "4242 (postgres: parley db 127.0.0.1(5) idle) S 1 4242 4242 0 -1 4194560 812 0 0 0 250 75 0 0 20 0 1 0 1000 1 1"
	got, err := statCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 325 * 10 * time.Millisecond; got != want {
		t.Errorf("statCPU = %s, want %s (utime 250 + stime 75 ticks)", got, want)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 no paren 1 2 3 4 5 6 7 8 9 10 11 12 13 14"} {
		if _, err := statCPU(bad); err == nil {
			t.Errorf("statCPU(%q): no error", bad)
		}
	}
}

func TestQueryKind(t *testing.T) {
	tests := map[string]string{
		"WITH cur AS (SELECT coalesce(max(version), -1) AS v FROM events WHERE stream = $1), ins AS (INSERT INTO events (txid":          "append",
		"SELECT id, type FROM events WHERE stream = $1 AND version >= $2":                                                               "stream read",
		"UPDATE chat_logs AS c SET text = ...":                                                                                          "chatlog",
		"SELECT pg_notify($1, '')":                                                                                                      "notify",
		"WITH b AS MATERIALIZED ( SELECT x.bound, EXISTS (SELECT 1 FROM events e WHERE (e.txid, e.seq) > ($1, $2) AND pg_snapshot_xmin": "log read",
		"SELECT greatest($1::bigint, (WITH l AS MATERIALIZED (SELECT locktype FROM pg_locks)":                                           "exact bound",
		"BEGIN": "other",
	}
	for q, want := range tests {
		if got := queryKind(q); got != want {
			t.Errorf("queryKind(%.40q) = %q, want %q", q, got, want)
		}
	}
}
