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
