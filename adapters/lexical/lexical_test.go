package lexical

import (
	"context"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/rag"
)

func newEmbedder(t *testing.T) *Embedder {
	t.Helper()
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDefaults(t *testing.T) {
	e := newEmbedder(t)
	if got, want := e.Dimension(), 384; got != want {
		t.Errorf("Dimension = %d, want %d", got, want)
	}
	if got, want := e.Name(), "lexical-hash-384"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	for _, d := range []int{-1, 8, 1<<16 + 1} {
		if _, err := New(Config{Dimension: d}); err == nil {
			t.Errorf("New(Dimension %d): nil error", d)
		}
	}
}

func TestVectorsAreDeterministicUnitLength(t *testing.T) {
	e := newEmbedder(t)
	texts := []string{"청년 월세 특별지원", "Youth rent support", "!!! ---", "a"}
	got, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.Embed(t.Context(), texts)
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("two embeddings of the same texts differ:\n%s", diff)
	}
	for i, v := range got {
		var sum float64
		for _, x := range v {
			sum += float64(x) * float64(x)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("%q: squared length %v, want 1", texts[i], sum)
		}
	}
	zero := e.Vector(" \n\t ")
	for _, x := range zero {
		if x != 0 {
			t.Fatalf("an all-space text gives a non-zero vector")
		}
	}
}

// TestVectorPinned pins a few components, so that an accidental change to
// the recipe (which would silently mix incomparable vectors in an index)
// fails here and is made deliberately, with a new Name.
func TestVectorPinned(t *testing.T) {
	v := newEmbedder(t).Vector("청년 월세 지원 Youth rent")
	got := []float32{v[0], v[13], v[25], v[33], v[47], v[76]}
	want := []float32{0, -0.12216944, 0.12216944, 0.12216944, -0.12216944, 0.12216944}
	if diff := cmp.Diff(want, got, cmpApprox); diff != "" {
		t.Errorf("components changed (-pinned +got):\n%s\nif the change is deliberate, rename the embedder and update pinned", diff)
	}
}

var cmpApprox = cmp.Comparer(func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 })

func TestNormalisation(t *testing.T) {
	e := newEmbedder(t)
	for _, tt := range []struct{ a, b string }{
		{"ＡＢＣ ｒｅｎｔ", "abc rent"},                       // full-width folds (NFKC)
		{"RENT Support", "rent support"},               // case folds
		{"\u1109\u1175\u11ab\u110e\u1165\u11bc", "신청"}, // conjoining jamo compose
	} {
		if s := rag.Cosine(e.Vector(tt.a), e.Vector(tt.b)); s < 0.9999 {
			t.Errorf("cosine(%q, %q) = %v, want 1", tt.a, tt.b, s)
		}
	}
}

func TestSimilarTextsScoreHigher(t *testing.T) {
	e := newEmbedder(t)
	for _, tt := range []struct{ query, near, far string }{
		{"청년 월세 지원 신청 방법", "청년월세 특별지원은 복지로에서 신청합니다.", "자동차 보험료 할인 제도를 안내합니다."},
		{"청년이 받을 수 있는 주거 지원", "청년은 주거 급여와 월세 지원을 받을 수 있다.", "노인 일자리 사업 참여 안내"},
		{"how do I apply for rent support", "Applications for rent support are made online.", "The museum opens at nine on Sundays."},
		{"parking permits", "A residential parking permit costs 40 euros.", "Bring your passport to the interview."},
	} {
		q := e.Vector(tt.query)
		near, far := rag.Cosine(q, e.Vector(tt.near)), rag.Cosine(q, e.Vector(tt.far))
		if near <= far {
			t.Errorf("%q: near %q scores %.3f, not above far %q at %.3f", tt.query, tt.near, near, tt.far, far)
		}
	}
}

func TestEmbedStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := newEmbedder(t).Embed(ctx, []string{"a"}); err == nil {
		t.Errorf("Embed with a cancelled context: nil error")
	}
}
