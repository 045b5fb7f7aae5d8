package kurrentdb

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeServer is an in-process KurrentDB streams service, enough of one to
// run the store over the real client without a server. It models what
// the store relies on, as read in KurrentDB's source (Streams.Append.cs,
// WriteEvents.cs, Event.SizeOnDisk, the index's commit check):
//
//   - appends are all or nothing; the request size counts data, metadata
//     and twice the type, against maxAppendSize;
//   - an expected revision before the stream's end makes the server
//     compare the IDs at the following revisions: all equal is an
//     idempotent success carrying the original revisions, else a wrong
//     expected version; an expected revision AT the end writes without
//     looking at IDs (the duplicate hazard the store guards against);
//     Any and StreamExists look the first ID up (the server's cache);
//   - the success reply carries one log position for both numbers, not
//     the last event's read position;
//   - events of one write share their commit position, each with its own
//     prepare position;
//   - reads of $all start at their position inclusive; catch-up
//     subscriptions start after theirs, send a checkpoint and "caught up",
//     and wait for a stream that does not exist yet;
//   - backward stream reads from past the end return nothing.
type fakeServer struct {
	api.UnimplementedStreamsServer

	maxAppendSize int

	mu       sync.Mutex
	log      []*fakeEvent
	streams  map[string][]*fakeEvent
	changed  chan struct{} // closed and replaced on every write
	drop     chan struct{} // closed and replaced to drop every subscription
	requests int           // append requests received
}

type fakeEvent struct {
	id       [16]byte
	stream   string
	typ      string
	rev      uint64
	commit   uint64
	prepare  uint64
	data     []byte
	metadata []byte
	created  time.Time
}

// startFakeServer serves a fakeServer on a local port until the test ends
// and returns it with its connection string.
func startFakeServer(t *testing.T, maxAppendSize int) (*fakeServer, string) {
	t.Helper()
	f := &fakeServer{
		maxAppendSize: maxAppendSize,
		streams:       make(map[string][]*fakeEvent),
		changed:       make(chan struct{}),
		drop:          make(chan struct{}),
	}
	// KurrentDB's own events come first in the log.
	f.write("$epoch-information", [][16]byte{{0xff, 1}}, []string{"$epoch"}, nil, nil)
	f.write("$stats-127.0.0.1:2113", [][16]byte{{0xff, 2}}, []string{"$statsCollected"}, nil, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no local TCP: %v", err)
	}
	srv := grpc.NewServer()
	api.RegisterStreamsServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return f, "esdb://" + l.Addr().String() + "?tls=false&maxDiscoverAttempts=3&discoveryInterval=10"
}

// fakeStoreOver returns a store dialled to f's address. Its cleanup runs
// before the server's, after those of anything the test starts later.
func fakeStoreOver(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	s, err := Dial(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// dropSubscriptions ends every live subscription with Unavailable, as a
// server restart does.
func (f *fakeServer) dropSubscriptions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.drop)
	f.drop = make(chan struct{})
}

func (f *fakeServer) appendRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// write stores events at the end of stream; the caller holds f.mu or owns f.
func (f *fakeServer) write(stream string, ids [][16]byte, types []string, data, metadata [][]byte) (first, last *fakeEvent) {
	commit := uint64(len(f.log)+1) * 1000
	for i := range ids {
		ev := &fakeEvent{
			id:      ids[i],
			stream:  stream,
			typ:     types[i],
			rev:     uint64(len(f.streams[stream])),
			commit:  commit,
			prepare: uint64(len(f.log)+1) * 1000,
			created: time.Now(),
		}
		if data != nil {
			ev.data, ev.metadata = data[i], metadata[i]
		}
		f.log = append(f.log, ev)
		f.streams[stream] = append(f.streams[stream], ev)
		if first == nil {
			first = ev
		}
		last = ev
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return first, last
}

// Append implements api.StreamsServer.
func (f *fakeServer) Append(srv api.Streams_AppendServer) error {
	resp, err := f.append(srv)
	if err != nil {
		return err
	}
	return srv.SendAndClose(resp)
}

func (f *fakeServer) append(srv api.Streams_AppendServer) (*api.AppendResp, error) {
	req, err := srv.Recv()
	if err != nil {
		return nil, err
	}
	opts := req.GetOptions()
	if opts == nil {
		return nil, status.Error(codes.InvalidArgument, "the first message is not the options")
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	var ids [][16]byte
	var types []string
	var data, metadata [][]byte
	size := 0
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		msg := req.GetProposedMessage()
		s := msg.GetId().GetStructured()
		var id [16]byte
		binary.BigEndian.PutUint64(id[:8], uint64(s.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(s.GetLeastSignificantBits()))
		typ := msg.GetMetadata()["type"]
		size += len(msg.GetData()) + len(msg.GetCustomMetadata()) + 2*len(typ)
		if size > f.maxAppendSize {
			return nil, status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", f.maxAppendSize)
		}
		ids = append(ids, id)
		types = append(types, typ)
		data = append(data, msg.GetData())
		metadata = append(metadata, msg.GetCustomMetadata())
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	evs := f.streams[stream]
	cur := int64(len(evs)) - 1
	wrong := func() (*api.AppendResp, error) {
		w := &api.AppendResp_WrongExpectedVersion{}
		if cur < 0 {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		} else {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(cur)}
		}
		return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}, nil
	}
	success := func(last uint64, pos uint64) (*api.AppendResp, error) {
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
			CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last},
			PositionOption:        &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: pos, PreparePosition: pos}},
		}}}, nil
	}
	// idempotent checks that ids are stored from revision from on.
	idempotent := func(from int64) (ok, partial bool) {
		for i, id := range ids {
			r := from + int64(i)
			if r > cur || evs[r].id != id {
				return false, i > 0
			}
		}
		return true, false
	}

	expected := int64(-2) // any
	switch {
	case opts.GetNoStream() != nil:
		expected = -1
	case opts.GetStreamExists() != nil:
		if cur < 0 {
			return wrong()
		}
	case opts.GetAny() != nil:
	default:
		expected = int64(opts.GetRevision())
	}
	if expected == -2 {
		for _, ev := range evs {
			if ev.id == ids[0] {
				ok, _ := idempotent(int64(ev.rev))
				if !ok {
					return wrong()
				}
				return success(ev.rev+uint64(len(ids))-1, evs[ev.rev].commit-1)
			}
		}
		_, last := f.write(stream, ids, types, data, metadata)
		return success(last.rev, last.prepare+1)
	}
	switch {
	case expected < cur:
		if ok, _ := idempotent(expected + 1); ok {
			return success(uint64(expected)+uint64(len(ids)), evs[expected+1].commit-1)
		}
		return wrong()
	case expected > cur:
		return wrong()
	}
	_, last := f.write(stream, ids, types, data, metadata)
	return success(last.rev, last.prepare+1)
}

// Read implements api.StreamsServer.
func (f *fakeServer) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	opts := req.GetOptions()
	backward := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	if opts.GetSubscription() != nil {
		return f.subscribe(opts, srv)
	}
	count := opts.GetCount()
	f.mu.Lock()
	var out []*fakeEvent
	if so := opts.GetStream(); so != nil {
		stream := string(so.GetStreamIdentifier().GetStreamName())
		evs, ok := f.streams[stream]
		if !ok {
			f.mu.Unlock()
			return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{StreamIdentifier: so.GetStreamIdentifier()}}})
		}
		from := int64(so.GetRevision())
		switch {
		case so.GetStart() != nil:
			from = 0
		case so.GetEnd() != nil && backward:
			from = int64(len(evs)) - 1
		case so.GetEnd() != nil:
			from = int64(len(evs))
		}
		if backward {
			// The index looks in [from-count+1, from]: from past the end
			// finds nothing, or fewer events than asked for.
			for r := min(from, int64(len(evs))-1); r >= max(from-int64(count)+1, 0); r-- {
				out = append(out, evs[r])
			}
		} else {
			for r := from; r < int64(len(evs)) && uint64(len(out)) < count; r++ {
				out = append(out, evs[r])
			}
		}
	} else {
		ao := opts.GetAll()
		switch {
		case backward:
			p := ao.GetPosition() // exclusive; nil is the end
			for i := len(f.log) - 1; i >= 0 && uint64(len(out)) < count; i-- {
				ev := f.log[i]
				if p == nil || ev.commit < p.GetCommitPosition() || ev.commit == p.GetCommitPosition() && ev.prepare < p.GetPreparePosition() {
					out = append(out, ev)
				}
			}
		default:
			p := ao.GetPosition()
			for _, ev := range f.log {
				if uint64(len(out)) == count {
					break
				}
				if p == nil || ev.commit > p.GetCommitPosition() || ev.commit == p.GetCommitPosition() && ev.prepare >= p.GetPreparePosition() {
					out = append(out, ev)
				}
			}
		}
	}
	f.mu.Unlock()
	for _, ev := range out {
		if err := srv.Send(eventResp(ev)); err != nil {
			return err
		}
	}
	return nil
}

// subscribe serves a catch-up subscription.
func (f *fakeServer) subscribe(opts *api.ReadReq_Options, srv api.Streams_ReadServer) error {
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
		keep = func(ev *fakeEvent) bool { return ev.stream == stream && int64(ev.rev) > after }
	} else {
		ao := opts.GetAll()
		var commit, prepare uint64
		if p := ao.GetPosition(); p != nil {
			commit, prepare = p.GetCommitPosition(), p.GetPreparePosition()
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

// rawAppend appends through the client directly, bypassing the store's
// checks, as another process or an interrupted split append would have.
func rawAppend(t *testing.T, s *Store, stream string, exp esdb.ExpectedRevision, evs ...esdb.EventData) {
	t.Helper()
	if _, err := s.client.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, evs...); err != nil {
		t.Fatalf("raw append to %s: %v", stream, err)
	}
}
