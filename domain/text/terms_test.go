package text_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parleychat/parley/domain/text"
)

// terms lists Terms(s) as "w:word" and "g:gram" strings.
func terms(s string) []string {
	var out []string
	text.Terms(s, func(k text.TermKind, t string) { out = append(out, fmt.Sprintf("%c:%s", k, t)) })
	return out
}

func TestTerms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"Korean words lose particles, keep grams of the whole word", "청년이 월세를",
			[]string{"w:청년", "g:청년", "g:년이", "w:월세", "g:월세", "g:세를"}},
		{"question words, endings and bound nouns give nothing", "누가 받을 수 있나요?",
			[]string{"w:받을", "g:받을"}},
		{"compounds match on their grams", "구직촉진수당",
			[]string{"w:구직촉진수당", "g:구직", "g:직촉", "g:촉진", "g:진수", "g:수당"}},
		{"one syllable is one word", "빚 집", []string{"w:빚", "w:집"}},
		{"a number and its unit split", "20만 원", []string{"w:20", "w:원"}},
		{"English stop words, single letters, possessives", "I moved out of my parents' place",
			[]string{"w:mov", "w:out", "w:parent", "w:plac"}},
		{"numbers keep decimals, drop separators", "700,000 won at 1.5%, year 2024.", []string{"w:700000", "w:1.5", "w:year", "w:2024"}},
		{"letters and digits split", "covid19", []string{"w:covid", "w:19"}},
		{"case folds", "Youth RENT", []string{"w:youth", "w:rent"}},
		{"nothing", " ... !!", nil},
		{"invalid UTF-8 splits", "rent\xffgrant", []string{"w:rent", "w:grant"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := terms(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Terms(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestStripParticle(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"청년이", "청년"},
		{"월세를", "월세"},
		{"집에서", "집"},
		{"행정복지센터에서는", "행정복지센터"},
		{"나이", "나이"}, // one-syllable particles leave two syllables
		{"제도", "제도"},
		{"빚을", "빚을"},
		{"제도가", "제도"},
		{"청년", "청년"},
	} {
		if got := text.StripParticle(tt.in); got != tt.want {
			t.Errorf("StripParticle(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStem(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"loans", "loan"}, {"applies", "apply"}, {"applied", "apply"}, {"applying", "apply"},
		{"move", "mov"}, {"moved", "mov"}, {"moving", "mov"}, {"moves", "mov"},
		{"stopped", "stop"}, {"counselling", "counsel"}, {"calling", "call"},
		{"business", "business"}, {"bus", "bus"}, {"basis", "basis"}, {"fees", "fee"},
		{"rent", "rent"}, {"renting", "rent"}, {"rented", "rent"},
		{"sing", "sing"}, {"red", "red"}, {"café", "café"},
	} {
		if got := text.Stem(tt.in); got != tt.want {
			t.Errorf("Stem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
