package qdrant

import (
	"context"
	"fmt"
	"math"
	"slices"

	qc "github.com/qdrant/go-client/qdrant"

	"github.com/parleychat/parley/domain/rag"
)

// Search implements rag.Index through the Query API, in one batch: every
// list of the query alone (for its ranks and scores), and, when there are
// several, all of them as prefetches of one query fused by RRF on the
// server. Each list's floor is its prefetch's score threshold. A sparse
// floor is a share of its query's attainable score, which needs the
// query's IDFs: maxScores reads them from the server first. With one list,
// the fused scores are its RRF scores, computed here as the server would.
func (x *Index) Search(ctx context.Context, q rag.Query, opts rag.SearchOptions) (rag.Result, error) {
	opts, err := rag.CheckSearch(q, x.cfg.Dimension, opts)
	if err != nil {
		return rag.Result{}, err
	}
	maxes, err := x.maxScores(ctx, q.Sparse)
	if err != nil {
		return rag.Result{}, err
	}
	var filter *qc.Filter
	if len(opts.Sources) > 0 {
		filter = &qc.Filter{Must: []*qc.Condition{qc.NewMatchKeywords(fieldSource, slices.Clone(opts.Sources)...)}}
	}
	var lists []*qc.PrefetchQuery
	floors := make([]float32, 0, len(q.Sparse)+len(q.Dense))
	for i, v := range q.Sparse {
		pq := &qc.PrefetchQuery{Query: qc.NewQuerySparse(v.Indices, v.Values), Using: qc.PtrOf(vectorSparse), Filter: filter, Limit: qc.PtrOf(uint64(opts.Candidates))}
		floor := float32(math.Inf(-1))
		if opts.MinRelevance > 0 {
			floor = float32(opts.MinRelevance * maxes[i])
			pq.ScoreThreshold = atLeast(floor)
		}
		lists, floors = append(lists, pq), append(floors, floor)
	}
	for _, v := range q.Dense {
		pq := &qc.PrefetchQuery{Query: qc.NewQueryDense(rag.Normalize(v)), Using: qc.PtrOf(vectorDense), Filter: filter, Limit: qc.PtrOf(uint64(opts.Candidates))}
		floor := float32(math.Inf(-1))
		if opts.MinSimilarity > -1 { // cosines are never below -1
			floor = float32(opts.MinSimilarity)
			pq.ScoreThreshold = atLeast(floor)
		}
		lists, floors = append(lists, pq), append(floors, floor)
	}
	fused := len(lists) > 1
	listPayload := qc.NewWithPayloadInclude(fieldSource)
	if !fused {
		listPayload = qc.NewWithPayload(true) // its hits are the result
	}
	batch := make([]*qc.QueryPoints, 0, len(lists)+1)
	for _, pq := range lists {
		batch = append(batch, &qc.QueryPoints{CollectionName: x.cfg.Collection, Query: pq.Query, Using: pq.Using,
			Filter: pq.Filter, ScoreThreshold: pq.ScoreThreshold, Limit: pq.Limit, WithPayload: listPayload})
	}
	if fused {
		batch = append(batch, &qc.QueryPoints{CollectionName: x.cfg.Collection, Prefetch: lists,
			Query: qc.NewQueryRRF(&qc.Rrf{K: qc.PtrOf(uint32(opts.RRFK))}), Limit: qc.PtrOf(uint64(opts.K)), WithPayload: qc.NewWithPayload(true)})
	}
	cctx, done, err := x.call(ctx)
	if err != nil {
		return rag.Result{}, x.fail("search", err)
	}
	defer done()
	resp, err := x.client.GetPointsClient().QueryBatch(cctx, &qc.QueryBatchPoints{CollectionName: x.cfg.Collection, QueryPoints: batch},
		x.recvLimit(len(batch)*max(opts.Candidates, opts.K), false))
	if err != nil {
		return rag.Result{}, x.fail("search", err)
	}
	results := resp.GetResult()
	if len(results) != len(batch) {
		return rag.Result{}, fmt.Errorf("qdrant %s: search: %d results for a batch of %d queries", x.cfg.Collection, len(results), len(batch))
	}
	var res rag.Result
	for i := range lists {
		l := rag.List{Kind: rag.KindSparse}
		if i >= len(q.Sparse) {
			l.Kind = rag.KindDense
		}
		var kept []*qc.ScoredPoint
		for _, p := range results[i].GetResult() {
			if p.GetScore() < floors[i] { // float32 rounding at the threshold
				continue
			}
			kept = append(kept, p)
			score := float64(p.GetScore())
			if l.Kind == rag.KindSparse {
				score /= maxes[i]
			}
			l.Hits = append(l.Hits, rag.ListHit{ChunkID: p.GetId().GetUuid(), Source: p.GetPayload()[fieldSource].GetStringValue(), Score: score})
		}
		res.Lists = append(res.Lists, l)
		if !fused {
			for pos, p := range kept[:min(len(kept), opts.K)] {
				if err := x.addHit(&res, p, rag.RRFScore(pos, opts.RRFK)); err != nil {
					return rag.Result{}, err
				}
			}
		}
	}
	if fused {
		for _, p := range results[len(lists)].GetResult() {
			if err := x.addHit(&res, p, float64(p.GetScore())); err != nil {
				return rag.Result{}, err
			}
		}
	}
	return res, nil
}

func (x *Index) addHit(res *rag.Result, p *qc.ScoredPoint, score float64) error {
	c, err := fromPayload(p.GetId().GetUuid(), p.GetPayload())
	if err != nil {
		return fmt.Errorf("qdrant %s: search: point %s: %w", x.cfg.Collection, p.GetId().GetUuid(), err)
	}
	res.Hits = append(res.Hits, rag.Hit{Chunk: c, Score: score})
	return nil
}

// atLeast is a score threshold keeping scores of at least min: the server
// keeps only scores strictly above a search's threshold.
func atLeast(min float32) *float32 {
	return qc.PtrOf(math.Nextafter32(min, float32(math.Inf(-1))))
}

// maxScores returns, for each sparse query, the most a chunk could score
// for it (rag.BM25.MaxScore) with the server's IDFs. The server computes
// a term's IDF from the points with a sparse vector and those holding the
// term, and tells neither; so for each distinct term a probe asks for the
// best point holding it, whose score is the IDF times the weight stored
// for the term, which the probe returns too. A term no point holds has
// the IDF of a document frequency of 0, for which the points with a
// sparse vector are counted.
func (x *Index) maxScores(ctx context.Context, sparse []rag.SparseVector) ([]float64, error) {
	if len(sparse) == 0 {
		return nil, nil
	}
	var terms []uint32
	for _, v := range sparse {
		terms = append(terms, v.Indices...)
	}
	slices.Sort(terms)
	terms = slices.Compact(terms)
	cctx, done, err := x.call(ctx)
	if err != nil {
		return nil, x.fail("count points with terms", err)
	}
	defer done()
	n, err := x.client.Count(cctx, &qc.CountPoints{CollectionName: x.cfg.Collection, Exact: qc.PtrOf(true),
		Filter: &qc.Filter{Must: []*qc.Condition{qc.NewHasVector(vectorSparse)}}})
	if err != nil {
		return nil, x.fail("count points with terms", err)
	}
	idf := make(map[uint32]float64, len(terms))
	if len(terms) > 0 {
		probes := make([]*qc.QueryPoints, len(terms))
		for i, t := range terms {
			probes[i] = &qc.QueryPoints{CollectionName: x.cfg.Collection, Query: qc.NewQuerySparse([]uint32{t}, []float32{1}),
				Using: qc.PtrOf(vectorSparse), Limit: qc.PtrOf(uint64(1)), WithVectors: qc.NewWithVectorsInclude(vectorSparse)}
		}
		results, err := x.client.QueryBatch(cctx, &qc.QueryBatchPoints{CollectionName: x.cfg.Collection, QueryPoints: probes})
		if err != nil {
			return nil, x.fail("read the query's IDFs", err)
		}
		if len(results) != len(terms) {
			return nil, fmt.Errorf("qdrant %s: read the query's IDFs: %d results for %d terms", x.cfg.Collection, len(results), len(terms))
		}
		for i, t := range terms {
			idf[t] = rag.IDF(int(n), 0)
			ps := results[i].GetResult()
			if len(ps) == 0 {
				continue
			}
			stored := sparseOf(ps[0].GetVectors().GetVectors().GetVectors()[vectorSparse])
			if j := slices.Index(stored.GetIndices(), t); j >= 0 && j < len(stored.GetValues()) && stored.GetValues()[j] > 0 {
				idf[t] = float64(ps[0].GetScore()) / float64(stored.GetValues()[j])
			}
		}
	}
	out := make([]float64, len(sparse))
	for i, v := range sparse {
		w := make([]float64, v.Len())
		for j, t := range v.Indices {
			w[j] = idf[t]
		}
		out[i] = rag.DefaultBM25.MaxScore(v.Values, w)
	}
	return out, nil
}
