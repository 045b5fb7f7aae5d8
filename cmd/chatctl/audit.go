package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/room"
)

// auditEnvironment ends the audit commands' help.
const auditEnvironment = `Environment:
  PARLEY_EVENT_STORE         the store audited, as chatd's: postgres (default) or kurrentdb
  PARLEY_DATABASE_URL        Postgres URL (default: the local development database)
  PARLEY_KURRENTDB_URL       KurrentDB connection string, for PARLEY_EVENT_STORE=kurrentdb
  PARLEY_AUDIT_SIGNING_KEY   private key file for head (instead of --sign-key)
  PARLEY_AUDIT_PUBLIC_KEY    public key file for verify --against (instead of --pubkey)
`

const auditHelp = `Exit status 1 when a chain does not verify, 2 for a command line that cannot run.

` + auditEnvironment

const auditVerifyUsage = `usage: chatctl audit verify (--room N | --all) [--against heads.json [--pubkey FILE]] [--allow-unchained] [--parallel N]

Recomputes each room's hash chain and reports the first broken version;
with --against, also checks that every head exported earlier is still on
its room's chain (catching rewritten chains and deleted tails). Exit
status 1 when anything fails.

` + auditEnvironment

const auditHeadUsage = `usage: chatctl audit head (--room N | --all) [--sign-key FILE] [--out FILE]

Exports the rooms' verified chain heads as JSON (stdout or --out), signed
with an Ed25519 key when one is given (chatctl audit keygen makes one).

` + auditEnvironment

const auditKeygenUsage = `usage: chatctl audit keygen --out FILE

Writes an Ed25519 key pair: FILE (private, mode 0600) and FILE.pub.
`

// auditCommands are the audit subcommands.
func auditCommands() []command {
	return []command{
		{name: "verify", args: "(--room N | --all)", summary: "recompute the rooms' hash chains, check exported heads", run: func(ctx context.Context, e runEnv, args []string) error {
			return runAuditVerify(ctx, args, e.getenv, e.stdout, e.stderr)
		}},
		{name: "head", args: "(--room N | --all)", summary: "export the rooms' chain heads, signed with --sign-key", run: func(ctx context.Context, e runEnv, args []string) error {
			return runAuditHead(ctx, args, e.getenv, e.stdout, e.stderr)
		}},
		{name: "keygen", args: "--out FILE", summary: "write an Ed25519 key pair to sign heads with", run: func(_ context.Context, e runEnv, args []string) error {
			return runAuditKeygen(args, e.stdout, e.stderr)
		}},
	}
}

// auditStore is what the audit commands read.
type auditStore interface {
	domain.StreamReader
	domain.AllReader
}

// auditStreamLister is the cheap way to list rooms, where the store has one.
type auditStreamLister interface {
	Streams(ctx context.Context, prefix string) ([]string, error)
}

// auditSelection is the --room/--all choice shared by verify and head.
type auditSelection struct {
	room     int64
	all      bool
	parallel int
}

func (s *auditSelection) register(fs *flag.FlagSet) {
	fs.Func("room", "the room `N` to audit", func(v string) error {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("%q is not a room id (a positive integer)", v)
		}
		s.room = id
		return nil
	})
	fs.BoolVar(&s.all, "all", false, "audit every room in the store")
	fs.IntVar(&s.parallel, "parallel", 4, "rooms read at once with --all")
}

func (s *auditSelection) check(cmd string) error {
	switch {
	case s.all && s.room != 0:
		return cli.Usage(fmt.Errorf("audit %s: give --room or --all, not both", cmd))
	case !s.all && s.room == 0:
		return cli.Usage(fmt.Errorf("audit %s: say which rooms: --room N or --all", cmd))
	case s.parallel < 1 || s.parallel > 64:
		return cli.Usage(fmt.Errorf("audit %s: --parallel %d is out of range 1..64", cmd, s.parallel))
	}
	return nil
}

func runAuditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("audit verify")
	var sel auditSelection
	sel.register(fs)
	against := fs.String("against", "", "a heads `file` from `chatctl audit head`: each head must still be on its room's chain")
	pubkey := fs.String("pubkey", "", "the Ed25519 public key `file` the heads file must be signed with (default $PARLEY_AUDIT_PUBLIC_KEY)")
	allowUnchained := fs.Bool("allow-unchained", false, "accept rooms none of whose events carry the chain (written before it was enabled)")
	if err := cli.Parse(fs, args, "chatctl audit verify", auditVerifyUsage, stdout); err != nil {
		return helpOK(err)
	}
	if err := sel.check("verify"); err != nil {
		return err
	}
	if *pubkey == "" {
		*pubkey = getenv("PARLEY_AUDIT_PUBLIC_KEY")
	}
	if *pubkey != "" && *against == "" {
		return cli.Usage(fmt.Errorf("audit verify: --pubkey checks a heads file; give it with --against"))
	}
	var anchors map[int64][]audit.Head
	if *against != "" {
		heads, err := auditLoadHeads(*against, *pubkey, stderr)
		if err != nil {
			return err
		}
		anchors = heads.Anchors()
	}
	store, closeStore, err := openEventStore(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	return auditVerify(ctx, store, sel, anchors, *allowUnchained, stdout, stderr)
}

// auditVerify verifies the selected rooms of store against anchors (the
// exported heads by room, nil for none) and reports on stdout.
func auditVerify(ctx context.Context, store auditStore, sel auditSelection, anchors map[int64][]audit.Head, allowUnchained bool, stdout, stderr io.Writer) error {
	rooms := []int64{sel.room}
	if sel.all {
		var err error
		if rooms, err = auditListRooms(ctx, store, stderr); err != nil {
			return err
		}
	} else if anchors != nil && len(anchors[sel.room]) == 0 {
		fmt.Fprintf(stderr, "warning: the heads file has no head for room %d; checking its chain alone\n", sel.room)
	}
	start := time.Now()
	results, err := auditVerifyRooms(ctx, store, rooms, anchors, sel.parallel, stderr)
	if err != nil {
		return err
	}
	var failed, events, erased int
	report := func(format string, args ...any) {
		failed++
		fmt.Fprintf(stdout, format+"\n", args...)
	}
	for i, res := range results {
		id := rooms[i]
		events += res.Events
		if res.Erased {
			erased++
		}
		switch {
		case res.missing:
			if len(anchors[id]) > 0 {
				report("room %d: BROKEN: it has no events, but a head at version %d was exported (the room was deleted)", id, anchors[id][0].Version)
			} else {
				report("room %d: not found: the store has no events for %s", id, room.Stream(id))
			}
		case res.FirstBroken != nil:
			report("room %d: BROKEN at version %d (%s): %s", id, res.FirstBroken.Version, res.FirstBroken.Kind, res.FirstBroken.Reason)
		case res.Unchained == res.Events && !allowUnchained:
			report("room %d: UNCHAINED: none of its %d events carries the audit chain, so nothing about it can be verified (--allow-unchained accepts rooms written before the chain was enabled)", id, res.Events)
		case !sel.all:
			note := ""
			if res.Unchained > 0 {
				note = fmt.Sprintf(" (%d leading events written before the chain, covered by the first chained event)", res.Unchained)
			}
			if len(anchors[id]) > 0 {
				note += fmt.Sprintf("; %d exported head(s) on the chain", len(anchors[id]))
			}
			if res.Erased {
				note += "; erased (RoomErased): its text is gone with its key, not tampered with"
			}
			fmt.Fprintf(stdout, "room %d: intact: %d events, head version %d hash %s%s\n", id, res.Events, res.Head.Version, res.Head.Hash, note)
		}
	}
	if sel.all {
		// Rooms with exported heads that the store no longer lists.
		listed := make(map[int64]bool, len(rooms))
		for _, id := range rooms {
			listed[id] = true
		}
		var gone []int64
		for id := range anchors {
			if !listed[id] {
				gone = append(gone, id)
			}
		}
		slices.Sort(gone)
		for _, id := range gone {
			report("room %d: BROKEN: it has no events, but a head at version %d was exported (the room was deleted)", id, anchors[id][0].Version)
		}
		elapsed := time.Since(start)
		note := ""
		if erased > 0 {
			note = fmt.Sprintf(" (%d erased rooms among them: their text is gone with their keys, their chains intact)", erased)
		}
		fmt.Fprintf(stdout, "verified %d rooms (%d events) in %s, %.0f rooms/s: %s%s\n", len(rooms), events,
			elapsed.Round(time.Millisecond), float64(len(rooms))/max(elapsed.Seconds(), 1e-9), auditSummary(failed), note)
	}
	if failed > 0 {
		return &exitError{Code: 1, Err: fmt.Errorf("audit verify: %s", auditSummary(failed))}
	}
	return nil
}

func auditSummary(failed int) string {
	switch failed {
	case 0:
		return "every chain intact"
	case 1:
		return "1 room failed verification"
	}
	return fmt.Sprintf("%d rooms failed verification", failed)
}

// auditRoomResult is one room's verification.
type auditRoomResult struct {
	audit.Result
	missing bool // the store has no events for the room
}

// auditVerifyRooms verifies rooms with parallel workers, showing progress
// on stderr, and returns the results in the rooms' order. Read errors stop
// it.
func auditVerifyRooms(ctx context.Context, store auditStore, rooms []int64, anchors map[int64][]audit.Head, parallel int, stderr io.Writer) ([]auditRoomResult, error) {
	results := make([]auditRoomResult, len(rooms))
	var (
		progress       *progress
		events, broken atomic.Int64
	)
	if len(rooms) > 1 {
		progress = newProgress(stderr, "verify", "rooms", int64(len(rooms)))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(parallel, len(rooms)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(rooms) || ctx.Err() != nil {
					return
				}
				res, err := audit.VerifyStream(ctx, store, room.Stream(rooms[i]), anchors[rooms[i]]...)
				switch {
				case errors.Is(err, domain.ErrStreamNotFound):
					results[i] = auditRoomResult{Result: res, missing: true}
				case err != nil:
					errOnce.Do(func() { firstErr = fmt.Errorf("audit: room %d: %w", rooms[i], err); cancel() })
					return
				default:
					results[i] = auditRoomResult{Result: res}
				}
				if progress != nil {
					if err != nil || res.FirstBroken != nil {
						broken.Add(1)
					}
					progress.add(1, fmt.Sprintf("%d events, %d broken", events.Add(int64(res.Events)), broken.Load()))
				}
			}
		})
	}
	wg.Wait()
	if progress != nil {
		progress.finish()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

// auditListRooms lists the room ids in store, in order: by the store's
// stream listing when it has one, otherwise by reading the whole log.
func auditListRooms(ctx context.Context, store auditStore, stderr io.Writer) ([]int64, error) {
	ids := make(map[int64]bool)
	if l, ok := store.(auditStreamLister); ok {
		names, err := l.Streams(ctx, room.StreamPrefix)
		if err != nil {
			return nil, fmt.Errorf("audit: list rooms: %w", err)
		}
		for _, n := range names {
			if id, ok := room.ParseStream(n); ok {
				ids[id] = true
			}
		}
	} else {
		fmt.Fprintln(stderr, "listing rooms: reading the whole log (this store cannot list its streams)")
		prog := newProgress(stderr, "list rooms", "events", 0)
		_, err := scanRoomEvents(ctx, store, func(id int64, _ domain.RecordedEvent) error {
			ids[id] = true
			return nil
		}, func(read int) { prog.update(int64(read), fmt.Sprintf("%d rooms so far", len(ids))) })
		prog.finish()
		if err != nil {
			return nil, fmt.Errorf("audit: list rooms from the log: %w", err)
		}
	}
	out := make([]int64, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

func runAuditHead(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("audit head")
	var sel auditSelection
	sel.register(fs)
	signKey := fs.String("sign-key", "", "the Ed25519 private key `file` to sign with (default $PARLEY_AUDIT_SIGNING_KEY; unsigned without one)")
	out := fs.String("out", "", "write the heads to `file` instead of stdout")
	if err := cli.Parse(fs, args, "chatctl audit head", auditHeadUsage, stdout); err != nil {
		return helpOK(err)
	}
	if err := sel.check("head"); err != nil {
		return err
	}
	if *signKey == "" {
		*signKey = getenv("PARLEY_AUDIT_SIGNING_KEY")
	}
	var key ed25519.PrivateKey
	if *signKey != "" {
		var err error
		if key, err = auditReadKey(*signKey, audit.ParsePrivateKey, "make one with `chatctl audit keygen`"); err != nil {
			return err
		}
	}
	store, closeStore, err := openEventStore(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	return auditExportHeads(ctx, store, sel, key, time.Now, *out, stdout, stderr)
}

// auditExportHeads verifies the selected rooms and writes the heads of the
// intact ones, signed with key unless it is nil. Broken rooms are reported
// on stderr and make it fail after writing the rest.
func auditExportHeads(ctx context.Context, store auditStore, sel auditSelection, key ed25519.PrivateKey, now func() time.Time, out string, stdout, stderr io.Writer) error {
	rooms := []int64{sel.room}
	if sel.all {
		var err error
		if rooms, err = auditListRooms(ctx, store, stderr); err != nil {
			return err
		}
	}
	results, err := auditVerifyRooms(ctx, store, rooms, nil, sel.parallel, stderr)
	if err != nil {
		return err
	}
	doc := audit.NewHeads(now())
	var failed int
	for i, res := range results {
		id := rooms[i]
		switch {
		case res.missing:
			failed++
			fmt.Fprintf(stderr, "room %d: not found: the store has no events for %s\n", id, room.Stream(id))
		case res.FirstBroken != nil:
			failed++
			fmt.Fprintf(stderr, "room %d: BROKEN at version %d (%s): %s; no head exported for it\n", id, res.FirstBroken.Version, res.FirstBroken.Kind, res.FirstBroken.Reason)
		default:
			doc.Add(id, res.Head)
		}
	}
	signed := "unsigned"
	if key != nil {
		if err := doc.Sign(key); err != nil {
			return err
		}
		signed = "signed with key " + doc.Signature.KeyID
	}
	var b bytes.Buffer
	if err := doc.Encode(&b); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	if out == "" {
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return fmt.Errorf("audit head: write: %w", err)
		}
	} else if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("audit head: write %s: %w", out, err)
	}
	fmt.Fprintf(stderr, "exported %d room heads (%s)\n", len(doc.Heads), signed)
	if failed > 0 {
		return &exitError{Code: 1, Err: fmt.Errorf("audit head: %d of %d rooms could not be exported", failed, len(rooms))}
	}
	return nil
}

// auditLoadHeads reads a heads file and checks its signature with the
// public key in pubkeyFile. A signed file needs the key; with a key, an
// unsigned file is refused (stripping the signature must not pass).
func auditLoadHeads(path, pubkeyFile string, stderr io.Writer) (*audit.Heads, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit verify: read the heads file: %w", err)
	}
	doc, err := audit.ParseHeads(b)
	if err != nil {
		return nil, fmt.Errorf("audit verify: %s: %w (make one with `chatctl audit head`)", path, err)
	}
	switch {
	case pubkeyFile == "" && doc.Signature != nil:
		return nil, cli.Usage(fmt.Errorf("audit verify: %s is signed (key %s); give the public key with --pubkey FILE or PARLEY_AUDIT_PUBLIC_KEY to check it", path, doc.Signature.KeyID))
	case pubkeyFile == "":
		fmt.Fprintf(stderr, "warning: %s is not signed; it proves only what its keeper vouches for\n", path)
		return doc, nil
	}
	pub, err := auditReadKey(pubkeyFile, audit.ParsePublicKey, "keygen writes it as FILE.pub")
	if err != nil {
		return nil, err
	}
	switch err := doc.Verify(pub); {
	case errors.Is(err, audit.ErrUnsigned):
		return nil, &exitError{Code: 1, Err: fmt.Errorf("audit verify: %s is not signed, but a public key was given: refusing it (was the signature removed?)", path)}
	case errors.Is(err, audit.ErrBadSignature):
		return nil, &exitError{Code: 1, Err: fmt.Errorf("audit verify: %s: %w: the file was changed after signing, or signed with another key; refusing it", path, err)}
	case err != nil:
		return nil, fmt.Errorf("audit verify: %s: %w", path, err)
	}
	fmt.Fprintf(stderr, "%s: signature valid (key %s), %d heads exported at %s\n", path, audit.KeyID(pub), len(doc.Heads), doc.ExportedAt)
	return doc, nil
}

func runAuditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("audit keygen")
	out := fs.String("out", "", "write the private key to `file` and the public key to file.pub")
	if err := cli.Parse(fs, args, "chatctl audit keygen", auditKeygenUsage, stdout); err != nil {
		return helpOK(err)
	}
	if *out == "" {
		return cli.Usage(fmt.Errorf("audit keygen: say where with --out FILE"))
	}
	privPEM, pubPEM, pub, err := audit.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	for _, f := range []struct {
		path string
		pem  []byte
		mode os.FileMode
	}{
		{*out, privPEM, 0o600},
		{*out + ".pub", pubPEM, 0o644},
	} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("audit keygen: %w (keygen never overwrites a key)", err)
		}
		_, err = fh.Write(f.pem)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("audit keygen: write %s: %w", f.path, err)
		}
	}
	fmt.Fprintf(stdout, "wrote the private key to %s and the public key to %s (key %s)\n", *out, *out+".pub", audit.KeyID(pub))
	fmt.Fprintf(stdout, "sign heads with: PARLEY_AUDIT_SIGNING_KEY=%s chatctl audit head --all; keep the private key away from the database's operators\n", *out)
	return nil
}

// auditReadKey reads a key file and parses it with parse; hint says
// where such files come from.
func auditReadKey[K any](path string, parse func([]byte) (K, error), hint string) (K, error) {
	var zero K
	b, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("audit: read the key: %w", err)
	}
	k, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("audit: %s: %w (%s)", path, err, hint)
	}
	return k, nil
}
