package certfleet

import (
	"slices"
	"testing"
)

func TestSearchTerms(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string
		want  []string
	}{
		{"dns name", []string{"www.Example.com."}, []string{"com", "example", "example.com", "www", "www.example", "www.example.com"}},
		{"wildcard", []string{"*.example.com"}, []string{"*.example.com", "com", "example", "example.com"}},
		{"ip address", []string{"192.0.2.1", "2001:db8::1"}, []string{"192.0.2.1", "2001:db8::1"}},
		{"name and identifiers, no duplicates", []string{"shop", "shop.example", "example"}, []string{"example", "shop", "shop.example"}},
		{"four labels", []string{"a.b.c.d"}, []string{"a", "a.b", "a.b.c", "a.b.c.d", "b", "b.c.d", "c", "c.d", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SearchTerms(tc.names...); !slices.Equal(got, tc.want) {
				t.Errorf("SearchTerms(%q) = %q, want %q", tc.names, got, tc.want)
			}
		})
	}
}

func TestNormalizeSearch(t *testing.T) {
	for in, want := range map[string]string{" WWW.Example.com. ": "www.example.com", "*.example.com": "example.com", "exam": "exam"} {
		if got := NormalizeSearch(in); got != want {
			t.Errorf("NormalizeSearch(%q) = %q, want %q", in, got, want)
		}
	}
}
