package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/vecindex"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
)

// DefaultRAGRefreshInterval is how often, at most, the index checks
// whether another process changed the collection.
const DefaultRAGRefreshInterval = 5 * time.Second

// ragWriteBatch is how many chunks one INSERT statement carries.
const ragWriteBatch = 500

// ragCheckTimeout bounds the generation check a search may make.
const ragCheckTimeout = 2 * time.Second

var collectionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// RAGIndexConfig configures a RAGIndex. Collection is required; the zero
// values of the other fields are their documented defaults.
type RAGIndexConfig struct {
	// Collection names the set of chunks, one per embedder (vectors of
	// different embedders must not be mixed): 1 to 128 letters, digits,
	// '.', '_' or '-', starting with a letter or digit. It is created on
	// first use.
	Collection string
	// Dimension is the embedder's vector dimension; 0 for a collection
	// without one, searched by its term vectors only. Opening an existing
	// collection with another dimension fails.
	Dimension int
	// RefreshInterval is how often, at most, Run or a search checks (one
	// indexed row read) whether another process changed the collection,
	// and reloads it if so. 0 means DefaultRAGRefreshInterval; negative
	// turns automatic checks off (call Reload).
	RefreshInterval time.Duration
	// Rescore is passed to the in-memory index (vecindex.Config.Rescore).
	Rescore int
	// Logger receives warnings about failed refreshes; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem with c.
func (c RAGIndexConfig) Validate() error {
	var errs []error
	if !collectionName.MatchString(c.Collection) {
		errs = append(errs, fmt.Errorf("rag index: Collection %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Collection))
	}
	if c.Dimension < 0 {
		errs = append(errs, fmt.Errorf("rag index: Dimension %d is negative (the embedder's dimension, or 0 for none)", c.Dimension))
	}
	if c.Rescore < 0 {
		errs = append(errs, fmt.Errorf("rag index: Rescore %d is negative", c.Rescore))
	}
	return errors.Join(errs...)
}

// RAGIndex is the embedded retrieval index: a rag.Index whose chunks, term
// vectors and dense vectors are stored in Postgres (tables rag_collections
// and rag_chunks) and searched in memory, in a vecindex.Index loaded when
// it opens. It needs no server besides Postgres and is safe for concurrent
// use. BM25's statistics are those of the copy in memory, which follows
// every write: this process's at once, other processes' at the next
// refresh.
//
// A collection records the sparse encoding of its term vectors
// (rag.SparseEncoding). One written before term vectors existed gets the
// current encoding when opened, and its chunks, which have none, are left
// out of Sources, so the next ingest writes them again; opening a
// collection of another encoding fails.
//
// Consistency. Every write is one transaction that also bumps the
// collection's generation; once it commits, the same change is applied to
// the in-memory copy, so a process always searches its own writes. Writes
// by other processes (say `chatctl ingest` while chatd serves) are noticed
// by the generation, read with one primary-key lookup at most every
// RefreshInterval; if it moved, the whole collection is reloaded (a few
// seconds per 100,000 chunks) and swapped in, searches using the previous
// copy meanwhile. A process that sees, after its own write, that the
// generation skipped a number checks again at once. Where the checks run:
// in Run, if the process runs it (chatd should), so searches never wait;
// otherwise in the first search after the interval, which then waits for
// the reload. If Postgres cannot be reached, searches keep answering from
// memory and the failure is logged.
type RAGIndex struct {
	pool     *pgxpool.Pool
	cfg      RAGIndexConfig
	log      *slog.Logger
	interval time.Duration

	writeMu   sync.Mutex // serialises this process's writes and reloads
	mem       atomic.Pointer[vecindex.Index]
	gen       atomic.Int64  // the generation mem reflects
	stale     atomic.Bool   // another process wrote: reload at the next search
	checkMu   sync.Mutex    // one generation check at a time
	lastCheck atomic.Int64  // when the generation was last read, Unix ns
	running   atomic.Bool   // Run does the checks
	kick      chan struct{} // wakes Run when stale
}

var (
	_ rag.Index          = (*RAGIndex)(nil)
	_ rag.SourceReplacer = (*RAGIndex)(nil)
)

// OpenRAGIndex opens cfg.Collection in a migrated database, creating it if
// missing, and loads it into memory.
func OpenRAGIndex(ctx context.Context, pool *pgxpool.Pool, cfg RAGIndexConfig) (*RAGIndex, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	x := &RAGIndex{
		pool:     pool,
		cfg:      cfg,
		log:      cfg.Logger.With("component", "postgres_rag_index", "collection", cfg.Collection),
		interval: cfg.RefreshInterval,
		kick:     make(chan struct{}, 1),
	}
	if x.interval == 0 {
		x.interval = DefaultRAGRefreshInterval
	}
	if _, err := pool.Exec(ctx, `INSERT INTO rag_collections (name, dimension, sparse) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		cfg.Collection, cfg.Dimension, rag.SparseEncoding); err != nil {
		return nil, fmt.Errorf("rag index %s: create collection: %w (is the schema migrated? `chatctl migrate up`)", cfg.Collection, err)
	}
	// A collection from before term vectors gets today's encoding; its
	// chunks have none until the next ingest writes them.
	if _, err := pool.Exec(ctx, `UPDATE rag_collections SET sparse = $2 WHERE name = $1 AND sparse IS NULL`, cfg.Collection, rag.SparseEncoding); err != nil {
		return nil, fmt.Errorf("rag index %s: record the sparse encoding: %w", cfg.Collection, err)
	}
	var dim int
	var enc string
	if err := pool.QueryRow(ctx, `SELECT dimension, sparse FROM rag_collections WHERE name = $1`, cfg.Collection).Scan(&dim, &enc); err != nil {
		return nil, fmt.Errorf("rag index %s: read collection: %w", cfg.Collection, err)
	}
	if dim != cfg.Dimension {
		return nil, domain.Errorf(domain.EINVALID,
			"rag index %s: the collection holds %s but the embedder makes %s: use another collection for this embedder, or delete this one",
			cfg.Collection, dimensions(dim), dimensions(cfg.Dimension))
	}
	if enc != rag.SparseEncoding {
		return nil, domain.Errorf(domain.EINVALID,
			"rag index %s: the collection's term vectors are encoded as %s, this version encodes them as %s: ingest into another collection (PARLEY_RAG_COLLECTION), or delete this one",
			cfg.Collection, enc, rag.SparseEncoding)
	}
	if err := x.Reload(ctx); err != nil {
		return nil, err
	}
	return x, nil
}

// Name returns "postgres".
func (x *RAGIndex) Name() string { return "postgres" }

// Collection returns the collection's name.
func (x *RAGIndex) Collection() string { return x.cfg.Collection }

// Generation returns the collection generation the in-memory copy
// reflects.
func (x *RAGIndex) Generation() int64 { return x.gen.Load() }

// Len returns the number of chunks in the in-memory copy.
func (x *RAGIndex) Len() int { return x.mem.Load().Len() }

// Reload replaces the in-memory copy with the collection as stored now.
func (x *RAGIndex) Reload(ctx context.Context) error {
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	return x.reloadLocked(ctx)
}

func (x *RAGIndex) reloadLocked(ctx context.Context) error {
	mem, err := vecindex.New(vecindex.Config{Dimension: x.cfg.Dimension, Rescore: x.cfg.Rescore})
	if err != nil {
		return err
	}
	tx, err := x.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("rag index %s: load: %w", x.cfg.Collection, err)
	}
	defer tx.Rollback(context.Background())
	var gen int64
	if err := tx.QueryRow(ctx, `SELECT generation FROM rag_collections WHERE name = $1`, x.cfg.Collection).Scan(&gen); err != nil {
		return fmt.Errorf("rag index %s: load generation: %w", x.cfg.Collection, err)
	}
	rows, err := tx.Query(ctx, `SELECT id::text, source, title, chunk_index, text, hash, metadata::text, vector, terms
		FROM rag_chunks WHERE collection = $1`, x.cfg.Collection)
	if err != nil {
		return fmt.Errorf("rag index %s: load chunks: %w", x.cfg.Collection, err)
	}
	defer rows.Close()
	chunks := make([]rag.Chunk, 0, ragWriteBatch)
	vectors := make([]rag.Vectors, 0, ragWriteBatch)
	flush := func() error {
		if err := mem.Upsert(ctx, chunks, vectors); err != nil {
			return fmt.Errorf("rag index %s: load: stored chunk is invalid: %w", x.cfg.Collection, err)
		}
		chunks, vectors = chunks[:0], vectors[:0]
		return nil
	}
	for rows.Next() {
		var c rag.Chunk
		var meta string
		var raw, terms []byte
		if err := rows.Scan(&c.ID, &c.Source, &c.Title, &c.Index, &c.Text, &c.Hash, &meta, &raw, &terms); err != nil {
			return fmt.Errorf("rag index %s: load chunks: %w", x.cfg.Collection, err)
		}
		if err := json.Unmarshal([]byte(meta), &c.Metadata); err != nil {
			return fmt.Errorf("rag index %s: chunk %s: metadata: %w", x.cfg.Collection, c.ID, err)
		}
		var v rag.Vectors
		if x.cfg.Dimension > 0 {
			if v.Dense, err = decodeVector(raw, x.cfg.Dimension); err != nil {
				return fmt.Errorf("rag index %s: chunk %s: %w", x.cfg.Collection, c.ID, err)
			}
		}
		if v.Sparse, err = decodeTerms(terms); err != nil {
			return fmt.Errorf("rag index %s: chunk %s: %w", x.cfg.Collection, c.ID, err)
		}
		chunks, vectors = append(chunks, c), append(vectors, v)
		if len(chunks) == ragWriteBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rag index %s: load chunks: %w", x.cfg.Collection, err)
	}
	if err := flush(); err != nil {
		return err
	}
	x.mem.Store(mem)
	x.gen.Store(gen)
	x.stale.Store(false)
	x.lastCheck.Store(time.Now().UnixNano())
	return nil
}

// Upsert implements rag.Index.
func (x *RAGIndex) Upsert(ctx context.Context, chunks []rag.Chunk, vectors []rag.Vectors) error {
	if err := rag.CheckUpsert(chunks, vectors, x.cfg.Dimension); err != nil {
		return err
	}
	if len(chunks) == 0 {
		return nil
	}
	return x.write(ctx, "upsert", func(tx pgx.Tx, gen int64) (bool, error) {
		return true, x.insert(ctx, tx, gen, chunks, vectors)
	}, func(m *vecindex.Index) error { return m.Upsert(ctx, chunks, vectors) })
}

// ReplaceSource implements rag.SourceReplacer in one transaction.
func (x *RAGIndex) ReplaceSource(ctx context.Context, source string, chunks []rag.Chunk, vectors []rag.Vectors) error {
	if err := rag.CheckReplace(source, chunks, vectors, x.cfg.Dimension); err != nil {
		return err
	}
	ids := make([]string, len(chunks))
	for i, c := range chunks {
		ids[i] = c.ID
	}
	return x.write(ctx, "replace source", func(tx pgx.Tx, gen int64) (bool, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM rag_chunks WHERE collection = $1 AND source = $2 AND NOT (id = ANY($3::uuid[]))`,
			x.cfg.Collection, source, ids)
		if err != nil {
			return false, err
		}
		return tag.RowsAffected() > 0 || len(chunks) > 0, x.insert(ctx, tx, gen, chunks, vectors)
	}, func(m *vecindex.Index) error { return m.ReplaceSource(ctx, source, chunks, vectors) })
}

// DeleteSource implements rag.Index. Deleting a source with no chunks
// writes nothing.
func (x *RAGIndex) DeleteSource(ctx context.Context, source string) error {
	return x.write(ctx, "delete source", func(tx pgx.Tx, gen int64) (bool, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM rag_chunks WHERE collection = $1 AND source = $2`, x.cfg.Collection, source)
		if err != nil {
			return false, err
		}
		return tag.RowsAffected() > 0, nil
	}, func(m *vecindex.Index) error { return m.DeleteSource(ctx, source) })
}

// write runs change in a transaction that bumps the generation, commits it
// if change reports that it changed something, and then applies the same
// change to the in-memory copy.
func (x *RAGIndex) write(ctx context.Context, what string, change func(pgx.Tx, int64) (bool, error), apply func(*vecindex.Index) error) error {
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	tx, err := x.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("rag index %s: %s: %w", x.cfg.Collection, what, err)
	}
	defer tx.Rollback(context.Background())
	var gen int64
	err = tx.QueryRow(ctx, `UPDATE rag_collections SET generation = generation + 1, updated_at = now()
		WHERE name = $1 RETURNING generation`, x.cfg.Collection).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "rag index %s: the collection was deleted", x.cfg.Collection)
	}
	if err != nil {
		return fmt.Errorf("rag index %s: %s: %w", x.cfg.Collection, what, err)
	}
	changed, err := change(tx, gen)
	if err != nil {
		return fmt.Errorf("rag index %s: %s: %w", x.cfg.Collection, what, err)
	}
	if !changed {
		return nil // rolled back: the generation stays
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("rag index %s: %s: commit: %w", x.cfg.Collection, what, err)
	}
	if err := apply(x.mem.Load()); err != nil {
		// Checked before writing, so this is a bug; the stored copy wins.
		x.log.Error("rag index: in-memory copy refused a committed write; reloading at next search", "op", what, "error", err)
		x.stale.Store(true)
		return nil
	}
	if !x.gen.CompareAndSwap(gen-1, gen) {
		x.stale.Store(true) // another process wrote in between
		select {
		case x.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// insert writes chunks and vectors at generation gen, in batches.
func (x *RAGIndex) insert(ctx context.Context, tx pgx.Tx, gen int64, chunks []rag.Chunk, vectors []rag.Vectors) error {
	for start := 0; start < len(chunks); start += ragWriteBatch {
		end := min(start+ragWriteBatch, len(chunks))
		n := end - start
		var (
			ids, sources, titles, texts, hashes, metas = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			indexes                                    = make([]int32, n)
			vecs, terms                                = make([][]byte, n), make([][]byte, n)
		)
		for i, c := range chunks[start:end] {
			meta := c.Metadata
			if meta == nil {
				meta = map[string]string{}
			}
			b, err := json.Marshal(meta)
			if err != nil {
				return fmt.Errorf("chunk %s: metadata: %w", c.ID, err)
			}
			ids[i], sources[i], titles[i], texts[i], hashes[i], metas[i] = c.ID, c.Source, c.Title, c.Text, c.Hash, string(b)
			if c.Index < math.MinInt32 || c.Index > math.MaxInt32 {
				return domain.Errorf(domain.EINVALID, "chunk %s: Index %d out of range", c.ID, c.Index)
			}
			indexes[i] = int32(c.Index)
			if d := vectors[start+i].Dense; d != nil {
				vecs[i] = encodeVector(rag.Normalize(d))
			}
			terms[i] = encodeTerms(vectors[start+i].Sparse)
		}
		_, err := tx.Exec(ctx, `INSERT INTO rag_chunks (collection, id, source, title, chunk_index, text, hash, metadata, vector, terms, generation)
			SELECT $1, u.id, u.source, u.title, u.chunk_index, u.text, u.hash, u.metadata::jsonb, u.vector, u.terms, $2
			FROM unnest($3::uuid[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::bytea[], $11::bytea[])
				AS u (id, source, title, chunk_index, text, hash, metadata, vector, terms)
			ON CONFLICT (collection, id) DO UPDATE SET
				source = EXCLUDED.source, title = EXCLUDED.title, chunk_index = EXCLUDED.chunk_index,
				text = EXCLUDED.text, hash = EXCLUDED.hash, metadata = EXCLUDED.metadata,
				vector = EXCLUDED.vector, terms = EXCLUDED.terms, generation = EXCLUDED.generation`,
			x.cfg.Collection, gen, ids, sources, titles, indexes, texts, hashes, metas, vecs, terms)
		if err != nil {
			return err
		}
	}
	return nil
}

// Sources implements rag.Index, reading the stored collection (not the
// in-memory copy), so that ingest diffs against what is durable. Chunks
// without term vectors (written before there were any) are left out, so
// that ingest writes them again.
func (x *RAGIndex) Sources(ctx context.Context) (map[string][]string, error) {
	rows, err := x.pool.Query(ctx, `SELECT source, id::text FROM rag_chunks WHERE collection = $1 AND terms IS NOT NULL`, x.cfg.Collection)
	if err != nil {
		return nil, fmt.Errorf("rag index %s: sources: %w", x.cfg.Collection, err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var source, id string
		if err := rows.Scan(&source, &id); err != nil {
			return nil, fmt.Errorf("rag index %s: sources: %w", x.cfg.Collection, err)
		}
		out[source] = append(out[source], id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rag index %s: sources: %w", x.cfg.Collection, err)
	}
	return out, nil
}

// Search implements rag.Index over the in-memory copy, after a generation
// check when one is due and Run is not running.
func (x *RAGIndex) Search(ctx context.Context, q rag.Query, opts rag.SearchOptions) (rag.Result, error) {
	if !x.running.Load() {
		x.refresh(ctx, false)
	}
	return x.mem.Load().Search(ctx, q, opts)
}

// Run checks for other processes' writes every RefreshInterval, and at
// once when a write of this process found one, reloading the in-memory
// copy off the search path, until ctx ends; then it returns nil. With
// RefreshInterval negative it returns nil at once.
func (x *RAGIndex) Run(ctx context.Context) error {
	if x.interval < 0 {
		return nil
	}
	x.running.Store(true)
	defer x.running.Store(false)
	t := time.NewTicker(x.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-x.kick:
		}
		x.refresh(ctx, true)
	}
}

// refresh reloads the in-memory copy if another process changed the
// collection: checked when forced or marked stale, else at most every
// interval, and by one caller at a time. Failures are logged; the old copy
// stays.
func (x *RAGIndex) refresh(ctx context.Context, force bool) {
	due := func() bool {
		return force || x.stale.Load() || (x.interval >= 0 && time.Since(time.Unix(0, x.lastCheck.Load())) >= x.interval)
	}
	if !due() || !x.checkMu.TryLock() {
		return
	}
	defer x.checkMu.Unlock()
	if !due() {
		return // another caller just checked
	}
	x.lastCheck.Store(time.Now().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, ragCheckTimeout)
	defer cancel()
	var gen int64
	err := x.pool.QueryRow(cctx, `SELECT generation FROM rag_collections WHERE name = $1`, x.cfg.Collection).Scan(&gen)
	if err != nil {
		if ctx.Err() == nil {
			x.log.Warn("rag index: cannot check for changes; searching the copy in memory", "error", err)
		}
		return
	}
	if gen == x.gen.Load() && !x.stale.Load() {
		return
	}
	start := time.Now()
	if err := x.Reload(ctx); err != nil {
		if ctx.Err() == nil {
			x.log.Warn("rag index: reload failed; searching the previous copy", "error", err)
		}
		return
	}
	x.log.Info("rag index: reloaded after a change by another process", "generation", x.gen.Load(), "chunks", x.Len(), "took", time.Since(start))
}

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// dimensions describes a collection's dense vectors for errors.
func dimensions(dim int) string {
	if dim == 0 {
		return "no dense vectors"
	}
	return fmt.Sprintf("%d-dimensional vectors", dim)
}

// encodeTerms stores a sparse vector as its index (uint32) and value
// (float32) pairs, little-endian.
func encodeTerms(v rag.SparseVector) []byte {
	b := make([]byte, 8*v.Len())
	for i, t := range v.Indices {
		binary.LittleEndian.PutUint32(b[8*i:], t)
		binary.LittleEndian.PutUint32(b[8*i+4:], math.Float32bits(v.Values[i]))
	}
	return b
}

// decodeTerms reads what encodeTerms wrote; nil (a chunk written before
// term vectors) is the empty vector.
func decodeTerms(b []byte) (rag.SparseVector, error) {
	if len(b)%8 != 0 {
		return rag.SparseVector{}, fmt.Errorf("stored terms have %d bytes, not a multiple of 8", len(b))
	}
	v := rag.SparseVector{Indices: make([]uint32, len(b)/8), Values: make([]float32, len(b)/8)}
	for i := range v.Indices {
		v.Indices[i] = binary.LittleEndian.Uint32(b[8*i:])
		v.Values[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[8*i+4:]))
	}
	return v, nil
}

func decodeVector(b []byte, dim int) ([]float32, error) {
	if len(b) != 4*dim {
		return nil, fmt.Errorf("stored vector has %d bytes, want %d (%d float32)", len(b), 4*dim, dim)
	}
	v := make([]float32, dim)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}
