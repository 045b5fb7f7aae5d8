package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// buildChatd builds the chatd binary for tests that run it as a process.
func buildChatd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: builds and runs chatd binaries")
	}
	bin := filepath.Join(t.TempDir(), "chatd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build chatd: %v", err)
	}
	return bin
}

// startProcess runs bin with env until the test ends (or it is killed)
// and returns it with its base URL, from its "chatd listening" log line.
func startProcess(t *testing.T, bin string, env []string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin)
	// The tests' KEK unless env names one (a later entry wins).
	cmd.Env = append([]string{"PARLEY_DATA_KEY=" + testDataKey}, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() { // ends when the process's stdout closes
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "chatd listening" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("chatd did not start")
	}
	return nil, ""
}
