package kurrentdbtest

import (
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// subscribe serves a catch-up subscription.
func (f *Server) subscribe(opts *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: "fake"}}}); err != nil {
		return err
	}
	var keep func(ev *fakeEvent) bool
	if so := opts.GetStream(); so != nil {
		stream := string(so.GetStreamIdentifier().GetStreamName())
		after := int64(-1)
		switch {
		case so.GetEnd() != nil:
			f.mu.Lock()
			after = int64(len(f.streams[stream])) - 1
			f.mu.Unlock()
		case so.GetStart() == nil:
			after = int64(so.GetRevision()) // exclusive
		}
		f.mu.Lock()
		deleted := f.tombstones[stream]
		f.mu.Unlock()
		if deleted {
			return streamDeleted(stream)
		}
		keep = func(ev *fakeEvent) bool { return ev.stream == stream && int64(ev.rev) > after }
	} else {
		ao := opts.GetAll()
		var commit, prepare uint64
		if p := ao.GetPosition(); p != nil {
			commit, prepare = p.GetCommitPosition(), p.GetPreparePosition()
			f.mu.Lock()
			valid := validAllPosition(f.log, commit, prepare)
			f.mu.Unlock()
			if !valid {
				return errInvalidPosition
			}
		}
		match := func(*fakeEvent) bool { return true }
		if e := opts.GetFilter().GetStreamIdentifier(); e != nil {
			if len(e.GetPrefix()) > 0 {
				match = func(ev *fakeEvent) bool {
					for _, p := range e.GetPrefix() {
						if strings.HasPrefix(ev.stream, p) {
							return true
						}
					}
					return false
				}
			} else {
				re, err := regexp.Compile(e.GetRegex())
				if err != nil {
					return status.Errorf(codes.InvalidArgument, "bad regex: %v", err)
				}
				match = func(ev *fakeEvent) bool { return re.MatchString(ev.stream) }
			}
		}
		keep = func(ev *fakeEvent) bool {
			after := ev.commit > commit || ev.commit == commit && ev.prepare > prepare
			return after && match(ev)
		}
	}
	sent := 0 // events of the log examined
	caughtUp := false
	for {
		f.mu.Lock()
		todo := f.log[sent:]
		sent = len(f.log)
		changed, drop := f.changed, f.drop
		f.mu.Unlock()
		for _, ev := range todo {
			if !keep(ev) {
				continue
			}
			if err := srv.Send(eventResp(ev)); err != nil {
				return err
			}
		}
		if !caughtUp {
			caughtUp = true
			if len(todo) > 0 {
				last := todo[len(todo)-1]
				cp := &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{CommitPosition: last.commit, PreparePosition: last.prepare}}}
				if err := srv.Send(cp); err != nil {
					return err
				}
			}
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-drop:
			return status.Error(codes.Unavailable, "server restarting")
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}

func eventResp(ev *fakeEvent) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id: &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
				MostSignificantBits:  int64(binary.BigEndian.Uint64(ev.id[:8])),
				LeastSignificantBits: int64(binary.BigEndian.Uint64(ev.id[8:])),
			}}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(ev.stream)},
			StreamRevision:   ev.rev,
			CommitPosition:   ev.commit,
			PreparePosition:  ev.prepare,
			Metadata: map[string]string{
				"type":         ev.typ,
				"content-type": "application/json",
				"created":      strconv.FormatInt(ev.created.UnixNano()/100, 10),
			},
			CustomMetadata: ev.metadata,
			Data:           ev.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: ev.commit},
	}}}
}
