package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain/chat"
)

const eraseUsage = `usage: chatctl erase (--room N | --user ID) --reason TEXT [--operator NAME]

Erases a room, or every room of a user (deleted ones included), by
crypto-shredding: the room's data key is destroyed first, so what was said
in it (stored only encrypted under that key: in the log, the read models,
WAL, replicas and backups) can no longer be read; then an answer still
streaming ends with reason "erased" and RoomErased (who, when, the reason;
no content) is appended to the room's stream, and the read models drop
the room. Erasing an erased room does nothing, so it can be run again.
The log keeps the room's timeline, and chatctl audit verify still passes.

Environment:
  PARLEY_EVENT_STORE    the event store chatd uses: postgres (default) or kurrentdb
  PARLEY_DATABASE_URL   Postgres: the key table and the ChatLog (default: the local development database)
  PARLEY_KURRENTDB_URL  KurrentDB's connection string, for PARLEY_EVENT_STORE=kurrentdb
  PARLEY_OPERATOR       default --operator (else $USER)
` + keysEnvironment

// runErase implements `chatctl erase`.
func runErase(ctx context.Context, e runEnv, args []string) error {
	fs := cli.NewFlagSet("erase")
	roomID := fs.Int64("room", 0, "id of the room to erase")
	user := fs.String("user", "", "erase every room of this user")
	reason := fs.String("reason", "", "why, recorded in RoomErased (e.g. \"GDPR request 2026-114\"); never the content")
	operator := fs.String("operator", "", "who erases, recorded in RoomErased (default $PARLEY_OPERATOR, else $USER)")
	if err := cli.Parse(fs, args, "chatctl erase", eraseUsage, e.stdout); err != nil {
		return helpOK(err)
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q (everything is a flag; see chatctl erase --help)", fs.Arg(0)))
	}
	switch {
	case *roomID < 0:
		problems = append(problems, "--room must be a positive integer")
	case *roomID == 0 && strings.TrimSpace(*user) == "":
		problems = append(problems, "say what to erase: --room N (one room) or --user ID (every room of a user)")
	case *roomID > 0 && *user != "":
		problems = append(problems, "--room and --user exclude each other")
	}
	if strings.TrimSpace(*reason) == "" {
		problems = append(problems, "--reason is required: say why (it is recorded, without any content)")
	}
	by, err := operatorName(*operator, e.getenv)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return cli.Usage(errors.New("erase: " + strings.Join(problems, "\nerase: ")))
	}

	store, ring, closeLog, err := openRoomLog(ctx, e.getenv, e.stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	pool, err := openPool(ctx, databaseURL(e.getenv))
	if err != nil {
		return err
	}
	defer pool.Close()
	chatlog, err := postgres.NewChatLog(pool, postgres.ChatLogConfig{})
	if err != nil {
		return err
	}
	svc := chat.NewService(chat.Config{Instance: "chatctl"}, chat.Deps{Store: store, Keys: ring, Owned: chatlog, Now: time.Now, Random: rand.Reader})
	eraser := chat.Eraser{By: by, Reason: strings.TrimSpace(*reason)}
	if *roomID > 0 {
		done, err := svc.Erase(ctx, *roomID, eraser)
		if err != nil {
			return fmt.Errorf("erase room %d: %w", *roomID, err)
		}
		if done {
			fmt.Fprintf(e.stdout, "room %d erased: its key is destroyed and RoomErased recorded\n", *roomID)
		} else {
			fmt.Fprintf(e.stdout, "room %d was erased already: nothing to do\n", *roomID)
		}
		return nil
	}
	ids, err := svc.EraseUser(ctx, strings.TrimSpace(*user), eraser)
	for _, id := range ids {
		fmt.Fprintf(e.stdout, "room %d erased\n", id)
	}
	if err != nil {
		return fmt.Errorf("erase the rooms of %s: %w", *user, err)
	}
	fmt.Fprintf(e.stdout, "%d rooms of %s erased now (rooms erased before are not counted)\n", len(ids), *user)
	return nil
}
