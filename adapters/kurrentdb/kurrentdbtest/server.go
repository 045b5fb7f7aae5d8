package kurrentdbtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Server is an in-process KurrentDB node serving the streams API,
// enough of one to run the store over the real client without a server.
// It models what the store relies on, as read in KurrentDB's source
// (Streams.Append.cs, Streams.Read.cs, RpcExceptions.cs, WriteEvents.cs,
// Event.SizeOnDisk, StorageReaderWorker.All.cs, the index's commit check):
//
//   - appends are all or nothing; each event's size is data, metadata and
//     twice the type, checked against maxAppendEventSize, and their sum
//     against maxAppendSize, both refused as InvalidArgument;
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
//     subscriptions start after theirs, send a confirmation, a checkpoint
//     and "caught up", and wait for a stream that does not exist yet;
//   - a $all read or subscription from a position inside the log that is
//     no event's position fails with InvalidArgument ("Trying to read
//     from an invalid position."), a subscription after its confirmation;
//   - backward stream reads from past the end return nothing;
//   - a tombstoned stream fails reads and appends with FailedPrecondition
//     and the "stream-deleted" exception trailers;
//   - a follower serves reads from its own, lagging copy of the log and
//     answers a read that requires the leader with the "not-leader"
//     exception trailers naming the leader;
//   - it goes down like a process (see fakenet_test.go): the listener
//     closes, every connection drops, and it comes back on the same port
//     with the same data, answering "Server Is Not Ready" for a moment.
type Server struct {
	api.UnimplementedStreamsServer
	*fakeData
	net fakeNet

	// follower, when set, makes this node a follower of that leader: it
	// shares the leader's data, but reads that do not require the leader
	// see only its first `visible` events.
	follower *Server
	visible  int // guarded by fakeData.mu
}

// fakeData is a node's log, shared by a leader and its followers.
type fakeData struct {
	maxAppendSize      int
	maxAppendEventSize int

	mu         sync.Mutex
	log        []*fakeEvent
	streams    map[string][]*fakeEvent
	tombstones map[string]bool
	changed    chan struct{} // closed and replaced on every write
	drop       chan struct{} // closed and replaced to drop every subscription
	requests   int           // append requests received
	leaderRead int           // reads received that required the leader
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

func newFakeData(maxAppendSize int) *fakeData {
	d := &fakeData{
		maxAppendSize:      maxAppendSize,
		maxAppendEventSize: min(maxAppendSize, 16<<20),
		streams:            make(map[string][]*fakeEvent),
		tombstones:         make(map[string]bool),
		changed:            make(chan struct{}),
		drop:               make(chan struct{}),
	}
	// KurrentDB's own events come first in the log.
	d.write("$epoch-information", [][16]byte{{0xff, 1}}, []string{"$epoch"}, nil, nil)
	d.write("$stats-127.0.0.1:2113", [][16]byte{{0xff, 2}}, []string{"$statsCollected"}, nil, nil)
	return d
}

// Start serves a Server on a local port until the test ends
// and returns it with its connection string. maxAppendSize is the
// server's MaxAppendSize; its MaxAppendEventSize is the smaller of that
// and KurrentDB's default, 16 MiB.
func Start(t *testing.T, maxAppendSize int) (*Server, string) {
	t.Helper()
	f := &Server{fakeData: newFakeData(maxAppendSize)}
	f.serve(t)
	return f, f.URL()
}

// StartFollower serves a follower of leader, whose reads see the leader's
// log as it is now until catchUp is called.
func StartFollower(t *testing.T, leader *Server) *Server {
	t.Helper()
	f := &Server{fakeData: leader.fakeData, follower: leader}
	f.mu.Lock()
	f.visible = len(f.log)
	f.mu.Unlock()
	f.serve(t)
	return f
}

// URL is the connection string of the node: the store's defaults, with
// discovery shortened so a dead client is noticed quickly.
func (f *Server) URL() string {
	return "esdb://" + f.net.addr + "?tls=false&maxDiscoverAttempts=3&discoveryInterval=10"
}

// LeaderReads is how many reads the node has received that asked for the
// leader.
func (f *Server) LeaderReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaderRead
}

// DropSubscriptions ends every live subscription with Unavailable, as a
// node shutting its subscriptions down does.
func (f *Server) DropSubscriptions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.drop)
	f.drop = make(chan struct{})
}

// AppendRequests is how many append requests the node has received.
func (f *Server) AppendRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// HardDelete tombstones stream, as KurrentDB's Tombstone call does.
func (f *Server) HardDelete(stream string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tombstones[stream] = true
}

// write stores events at the end of stream; the caller holds d.mu or owns d.
func (d *fakeData) write(stream string, ids [][16]byte, types []string, data, metadata [][]byte) (first, last *fakeEvent) {
	commit := uint64(len(d.log)+1) * 1000
	for i := range ids {
		ev := &fakeEvent{
			id:      ids[i],
			stream:  stream,
			typ:     types[i],
			rev:     uint64(len(d.streams[stream])),
			commit:  commit,
			prepare: uint64(len(d.log)+1) * 1000,
			created: time.Now(),
		}
		if data != nil {
			ev.data, ev.metadata = data[i], metadata[i]
		}
		d.log = append(d.log, ev)
		d.streams[stream] = append(d.streams[stream], ev)
		if first == nil {
			first = ev
		}
		last = ev
	}
	close(d.changed)
	d.changed = make(chan struct{})
	return first, last
}

// streamDeleted is KurrentDB's answer to a tombstoned stream.
func streamDeleted(stream string) error {
	st := status.New(codes.FailedPrecondition, fmt.Sprintf("Event stream '%s' is deleted.", stream))
	return withTrailer(st, "exception", "stream-deleted", "stream-name", stream)
}

// withTrailer returns st's error; the handler's caller sends kv as its
// trailers (see fakeNet's interceptors).
func withTrailer(st *status.Status, kv ...string) error {
	return &trailerError{st: st, md: metadata.Pairs(kv...)}
}

type trailerError struct {
	st *status.Status
	md metadata.MD
}

func (e *trailerError) Error() string              { return e.st.Err().Error() }
func (e *trailerError) GRPCStatus() *status.Status { return e.st }

// Append implements api.StreamsServer.
func (f *Server) Append(srv api.Streams_AppendServer) error {
	resp, err := f.append(srv)
	if err != nil {
		return err
	}
	return srv.SendAndClose(resp)
}

func (f *Server) append(srv api.Streams_AppendServer) (*api.AppendResp, error) {
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
		n := len(msg.GetData()) + len(msg.GetCustomMetadata()) + 2*len(typ)
		if n > f.maxAppendEventSize {
			return nil, status.Errorf(codes.InvalidArgument, "Event with Id: %x, Size: %d, exceeds Maximum Append Event Size of %d.", id, n, f.maxAppendEventSize)
		}
		if size += n; size > f.maxAppendSize {
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
	if f.tombstones[stream] {
		return nil, streamDeleted(stream)
	}
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
	idempotent := func(from int64) bool {
		for i, id := range ids {
			r := from + int64(i)
			if r > cur || evs[r].id != id {
				return false
			}
		}
		return true
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
				if !idempotent(int64(ev.rev)) {
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
		if idempotent(expected + 1) {
			return success(uint64(expected)+uint64(len(ids)), evs[expected+1].commit-1)
		}
		return wrong()
	case expected > cur:
		return wrong()
	}
	_, last := f.write(stream, ids, types, data, metadata)
	return success(last.rev, last.prepare+1)
}

// requiresLeader reports whether a call asked for the leader, as
// KurrentDB's ServiceBase.GetRequiresLeader reads it.
func requiresLeader(md metadata.MD) bool {
	v := md.Get("requires-leader")
	return len(v) > 0 && strings.EqualFold(v[0], "true")
}

// notLeader is a follower's answer to a call that requires the leader.
func (f *Server) notLeader() error {
	host, port, _ := strings.Cut(f.follower.net.addr, ":")
	return withTrailer(status.New(codes.NotFound, "Leader info available"),
		"exception", "not-leader", "leader-endpoint-host", host, "leader-endpoint-port", port)
}

// view returns the events this node's reads see: a follower's lag behind
// its leader. The caller holds f.mu.
func (f *Server) view() (log []*fakeEvent, stream func(string) []*fakeEvent) {
	if f.follower == nil {
		return f.log, func(s string) []*fakeEvent { return f.streams[s] }
	}
	log = f.log[:f.visible]
	return log, func(s string) []*fakeEvent {
		var out []*fakeEvent
		for _, ev := range f.streams[s] {
			if ev.prepare <= log[len(log)-1].prepare {
				out = append(out, ev)
			}
		}
		return out
	}
}

// validAllPosition reports whether a $all read may start at commit/prepare:
// the start, the end or past it, or an event's position. Anything else
// points into the middle of a record, which KurrentDB refuses.
func validAllPosition(log []*fakeEvent, commit, prepare uint64) bool {
	if commit == 0 && prepare == 0 || len(log) == 0 || commit > log[len(log)-1].commit {
		return true
	}
	for _, ev := range log {
		if ev.commit == commit && ev.prepare == prepare {
			return true
		}
	}
	return false
}

var errInvalidPosition = status.Error(codes.InvalidArgument, "Trying to read from an invalid position.")

// Read implements api.StreamsServer.
func (f *Server) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	opts := req.GetOptions()
	md, _ := metadata.FromIncomingContext(srv.Context())
	if requiresLeader(md) {
		f.mu.Lock()
		f.leaderRead++
		f.mu.Unlock()
		if f.follower != nil {
			return f.notLeader()
		}
	}
	backward := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	if opts.GetSubscription() != nil {
		return f.subscribe(opts, srv)
	}
	count := opts.GetCount()
	f.mu.Lock()
	log, streamOf := f.view()
	var out []*fakeEvent
	if so := opts.GetStream(); so != nil {
		stream := string(so.GetStreamIdentifier().GetStreamName())
		if f.tombstones[stream] {
			f.mu.Unlock()
			return streamDeleted(stream)
		}
		evs := streamOf(stream)
		if len(evs) == 0 {
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
		p := opts.GetAll().GetPosition() // nil is the start, or backwards the end
		if p != nil && !validAllPosition(log, p.GetCommitPosition(), p.GetPreparePosition()) {
			f.mu.Unlock()
			return errInvalidPosition
		}
		if backward {
			for i := len(log) - 1; i >= 0 && uint64(len(out)) < count; i-- {
				ev := log[i]
				if p == nil || ev.commit < p.GetCommitPosition() || ev.commit == p.GetCommitPosition() && ev.prepare < p.GetPreparePosition() {
					out = append(out, ev)
				}
			}
		} else {
			for _, ev := range log {
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

// RawAppend appends through a client of its own, bypassing the store's
// checks, as another process or an interrupted split append would have.
func RawAppend(t *testing.T, url string, stream string, exp esdb.ExpectedRevision, evs ...esdb.EventData) {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, evs...); err != nil {
		t.Fatalf("raw append to %s: %v", stream, err)
	}
}
