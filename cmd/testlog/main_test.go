package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		in     []string
		want   string
		failed bool
	}{
		{
			name: "passing package: its result line only",
			in: []string{
				`{"Action":"run","Package":"p","Test":"TestA"}`,
				`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
				`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: chatter\n"}`,
				`{"Action":"pass","Package":"p","Test":"TestA"}`,
				`{"Action":"output","Package":"p","Output":"PASS\n"}`,
				`{"Action":"output","Package":"p","Output":"ok  \tp\t0.01s\n"}`,
				`{"Action":"pass","Package":"p"}`,
			},
			want: "ok  \tp\t0.01s\n",
		},
		{
			name: "skipped integration test: one SKIP line with its reason",
			in: []string{
				`{"Action":"output","Package":"p","Test":"TestDB","Output":"=== RUN   TestDB\n"}`,
				`{"Action":"output","Package":"p","Test":"TestDB","Output":"    db_test.go:12: SKIP: PARLEY_X_URL not set\n"}`,
				`{"Action":"output","Package":"p","Test":"TestDB","Output":"--- SKIP: TestDB (0.00s)\n"}`,
				`{"Action":"skip","Package":"p","Test":"TestDB"}`,
				`{"Action":"skip","Package":"p","Test":"TestQuiet"}`,
				`{"Action":"output","Package":"p","Output":"ok  \tp\t0.01s\n"}`,
			},
			want: "--- SKIP: TestDB (p): SKIP: PARLEY_X_URL not set\nok  \tp\t0.01s\n",
		},
		{
			name: "failed test: all its output, and a failure",
			in: []string{
				`{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}`,
				`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:5: got 1, want 2\n"}`,
				`{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (0.00s)\n"}`,
				`{"Action":"fail","Package":"p","Test":"TestB"}`,
				`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}`,
				`{"Action":"fail","Package":"p"}`,
			},
			want:   "=== RUN   TestB\n    b_test.go:5: got 1, want 2\n--- FAIL: TestB (0.00s)\nFAIL\tp\t0.01s\n",
			failed: true,
		},
		{
			name: "package timed out mid-test: the test's output still shows",
			in: []string{
				`{"Action":"output","Package":"p","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}`,
				`{"Action":"output","Package":"p","Test":"TestSlow","Output":"panic: test timed out after 1s\n"}`,
				`{"Action":"output","Package":"p","Output":"FAIL\tp\t1.01s\n"}`,
				`{"Action":"fail","Package":"p"}`,
			},
			want:   "FAIL\tp\t1.01s\n=== RUN   TestSlow\npanic: test timed out after 1s\n",
			failed: true,
		},
		{
			name: "build failure and lines that are not events",
			in: []string{
				`go vet ./...`,
				`{"ImportPath":"q","Action":"build-output","Output":"q/q.go:3:1: syntax error\n"}`,
				`{"ImportPath":"q","Action":"build-fail"}`,
			},
			want:   "go vet ./...\nq/q.go:3:1: syntax error\n",
			failed: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			failed, err := run(strings.NewReader(strings.Join(tc.in, "\n")+"\n"), &out)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tc.want)
			}
			if failed != tc.failed {
				t.Errorf("failed = %v, want %v", failed, tc.failed)
			}
		})
	}
}
