package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room/roomgen"
)

// chatctlArgsEnv carries the arguments of a chatctl run in a re-executed
// test binary (see TestChatctlProcess), separated by \x1f.
const chatctlArgsEnv = "CHATCTL_TEST_PROCESS_ARGS"

// TestChatctlProcess is not a test: it is chatctl itself, run by main,
// when a test re-executes its binary with chatctlArgsEnv set, so that it
// can kill -9 a real process.
func TestChatctlProcess(t *testing.T) {
	args := os.Getenv(chatctlArgsEnv)
	if args == "" {
		return
	}
	os.Args = append([]string{"chatctl"}, strings.Split(args, "\x1f")...)
	main()
	os.Exit(0) // as chatctl does, without the test framework's report
}

// startChatctl runs chatctl args in a child process against the env's
// database.
func (e *pgEnv) startChatctl(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChatctlProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), chatctlArgsEnv+"="+strings.Join(args, "\x1f"), "PARLEY_DATABASE_URL="+e.url, "PARLEY_DATA_KEY="+testDataKey)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// waitMoved polls checkpoint name until it has moved past from and
// returns true. It returns false, with the run's error, when the run
// watched ends first (a value on ended). After two minutes it stops the
// run and fails the test.
func (e *pgEnv) waitMoved(t *testing.T, name string, from domain.Position, ended <-chan error, stop func()) (bool, error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-ended:
			return false, err
		default:
		}
		if cp, _ := e.checkpoint(t, name); from.Less(cp) {
			return true, nil
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("checkpoint %s never moved past %s", name, from)
		}
		time.Sleep(time.Millisecond)
	}
}

// killWhenMoved kills cmd with SIGKILL at a random moment after the
// checkpoint name has moved past from, and returns where it was then, or
// false when the process ended by itself first.
func (e *pgEnv) killWhenMoved(t *testing.T, cmd *exec.Cmd, name string, from domain.Position, rng *rand.Rand) (domain.Position, bool) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if moved, _ := e.waitMoved(t, name, from, exited, func() { cmd.Process.Kill(); <-exited }); !moved {
		return domain.Start, false
	}
	time.Sleep(time.Duration(rng.IntN(100_000)) * time.Microsecond) // anywhere, mostly inside a batch
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return domain.Start, false // it finished just before the kill
	}
	cp, _ := e.checkpoint(t, name)
	return cp, true
}

// killRuns runs chatctl args in a child process up to three times, each
// run killed with SIGKILL at a random moment after checkpoint name has
// moved past where the run before was killed, and calls afterKill with
// where each was killed. It returns how many runs it killed, and the
// output of the run that ended by itself before its kill, which ends the
// runs, or nil when all three were killed.
func (e *pgEnv) killRuns(t *testing.T, name string, rng *rand.Rand, afterKill func(domain.Position), args ...string) (int, *bytes.Buffer) {
	t.Helper()
	at := domain.Start
	for i := range 3 {
		cmd, out := e.startChatctl(t, args...)
		cp, killed := e.killWhenMoved(t, cmd, name, at, rng)
		if !killed {
			return i, out
		}
		afterKill(cp)
		at = cp
	}
	return 3, nil
}

func TestRebuildSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: re-executes the test binary; run without -short")
	}
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 1000, Seed: 21})
	r, _ := e.startRunner(t)
	e.waitFor(t, r)
	live := e.dump(t, "")
	rng := rand.New(rand.NewPCG(21, 21))

	kills, finished := e.killRuns(t, "chatlog_next", rng, func(cp domain.Position) {
		t.Logf("killed the rebuild at shadow checkpoint %s", cp)
		if !e.tableExists(t, "rooms_next") || e.tableExists(t, "rooms_old") {
			t.Fatal("after a kill mid-rebuild the shadow should be there and nothing swapped")
		}
	}, "projections", "rebuild", "chatlog", "--batch", "50")
	if finished != nil {
		t.Logf("the rebuild finished before the kill:\n%s", finished)
	}
	if kills == 0 {
		t.Fatal("no rebuild was killed midway")
	}
	out, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog")
	if err != nil {
		t.Fatalf("rebuild after the kills: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "resuming an interrupted rebuild") {
		t.Errorf("the rebuild did not resume:\n%s", errOut)
	}
	checkSame(t, "live tables after a rebuild killed and resumed", e.dump(t, ""), live)
	checkSame(t, "live tables against a fresh build", e.dump(t, ""), e.reference(t))
}

func TestRunSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: re-executes the test binary; run without -short")
	}
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 1000, Seed: 22})
	rng := rand.New(rand.NewPCG(22, 22))
	_, finished := e.killRuns(t, "chatlog", rng, func(cp domain.Position) {
		t.Logf("killed projections run at checkpoint %s", cp)
	}, "projections", "run", "chatlog", "--batch", "50")
	if finished != nil {
		t.Fatalf("projections run ended by itself:\n%s", finished)
	}
	// A last run, in this process, to the end.
	r, _ := e.startRunner(t)
	e.waitFor(t, r)
	checkSame(t, "live tables after runs killed and restarted", e.dump(t, ""), e.reference(t))
}

func TestRebuildResumesAfterCtrlC(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 300, Seed: 23})
	r, _ := e.startRunner(t)
	e.waitFor(t, r)
	live := e.dump(t, "")
	rng := rand.New(rand.NewPCG(23, 23))
	at := domain.Start
	for i := range 3 {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		var errOut string
		go func() {
			var err error
			_, errOut, err = e.chatctl(ctx, "projections", "rebuild", "chatlog", "--batch", "40")
			done <- err
		}()
		if moved, err := e.waitMoved(t, "chatlog_next", at, done, func() { cancel(); <-done }); !moved {
			t.Fatalf("rebuild %d ended before its checkpoint moved: %v\n%s", i, err, errOut)
		}
		time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
		cancel()
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "interrupted at position") || !strings.Contains(err.Error(), "rerun to resume") {
			t.Fatalf("interrupted rebuild %d = %v, want it to say where it stopped\n%s", i, err, errOut)
		}
		at, _ = e.checkpoint(t, "chatlog_next")
		t.Logf("interrupted: %v", err)
	}
	out, _, err := e.chatctl(t.Context(), "projections", "status")
	if err != nil || !strings.Contains(out, "chatlog_next") || !strings.Contains(out, "rebuild in progress or interrupted") {
		t.Errorf("status during an interrupted rebuild = %v:\n%s", err, out)
	}
	if _, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog"); err != nil {
		t.Fatalf("rebuild after the interruptions: %v\n%s", err, errOut)
	}
	checkSame(t, "live tables after an interrupted rebuild resumed", e.dump(t, ""), live)
}
