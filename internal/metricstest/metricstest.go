// Package metricstest scrapes a Prometheus endpoint over HTTP and parses the
// exposition format (prometheus/common/expfmt), for tests that check metric
// values as a real Prometheus would read them. Test code only.
package metricstest

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// MustScrape GETs url with the given headers (key, value pairs), fails the
// test unless it answers 200 with parseable text, and returns the families.
func MustScrape(t testing.TB, url string, header ...string) Families {
	t.Helper()
	f, status, err := Scrape(url, header...)
	if err != nil || status != http.StatusOK {
		t.Fatalf("scrape %s: status %d, %v", url, status, err)
	}
	return f
}

// Scrape GETs url and parses the answer when it is 200.
func Scrape(url string, header ...string) (Families, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("parse exposition: %w", err)
	}
	return Families(fams), resp.StatusCode, nil
}

// Find returns the metrics of family name whose labels include every
// (name, value) pair of labels.
func (f Families) Find(name string, labels ...string) []*dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.GetMetric() {
		if hasLabels(m, labels) {
			out = append(out, m)
		}
	}
	return out
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Value returns the sum of the values (counter, gauge or untyped; a
// histogram's sample count) of the metrics Find selects, and whether any
// matched.
func (f Families) Value(name string, labels ...string) (float64, bool) {
	ms := f.Find(name, labels...)
	sum := 0.0
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, len(ms) > 0
}

// LabelValues lists the distinct values of label among family name's
// metrics, sorted.
func (f Families) LabelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, m := range f.Find(name) {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				seen[lp.GetValue()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// String lists the family's series, for failure messages.
func (f Families) String(name string) string {
	var b strings.Builder
	for _, m := range f.Find(name) {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, lp.GetName()+"="+lp.GetValue())
		}
		v, _ := Families{name: &dto.MetricFamily{Metric: []*dto.Metric{m}}}.Value(name)
		fmt.Fprintf(&b, "{%s} %g\n", strings.Join(ls, ","), v)
	}
	return b.String()
}
