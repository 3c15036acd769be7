package metrics

import (
	"context"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the store queries of one scrape.
const scrapeTimeout = 20 * time.Second

var (
	descNotAfter = prometheus.NewDesc(Namespace+"_certificate_not_after_timestamp_seconds",
		"Expiry (NotAfter) of each certificate lineage's current certificate, Unix seconds.", []string{"certificate", "key_type"}, nil)
	descNotBefore = prometheus.NewDesc(Namespace+"_certificate_not_before_timestamp_seconds",
		"Start of validity (NotBefore) of each certificate lineage's current certificate, Unix seconds.", []string{"certificate", "key_type"}, nil)
	descJobs = prometheus.NewDesc(Namespace+"_jobs",
		"Renewal jobs (one per certificate and key type) that are enabled.", nil, nil)
	descJobsDue = prometheus.NewDesc(Namespace+"_jobs_due",
		"Queue depth: enabled jobs due now that no live lease holds.", nil, nil)
	descJobsFailing = prometheus.NewDesc(Namespace+"_jobs_failing",
		"Enabled jobs whose last attempt failed.", nil, nil)
	descJobsNotWritten = prometheus.NewDesc(Namespace+"_jobs_not_written",
		"Enabled jobs whose current certificate is issued but could not be written to its outputs (output_dir, copies, commands).", nil, nil)
	descCertNotWritten = prometheus.NewDesc(Namespace+"_certificate_not_written",
		"1 while a certificate lineage's current certificate is issued but not written to its outputs, else 0.", []string{"certificate", "key_type"}, nil)
	descLeases = prometheus.NewDesc(Namespace+"_leases",
		"Job leases by state: held (work in flight) or expired (an instance died or stalled holding it).", []string{"state"}, nil)
	descAgentLast = prometheus.NewDesc(Namespace+"_agent_last_checkin_timestamp_seconds",
		"When each agent last reported (any certificate), Unix seconds.", []string{"agent"}, nil)
	descReadiness = prometheus.NewDesc(Namespace+"_readiness_violation",
		"1 for each step of a certificate's path that takes longer than a tenth of its lifetime: source agent_checkin, deploy or endpoint_reload; subject the agent or endpoint.",
		[]string{"certificate", "source", "subject"}, nil)
	descWaiting = prometheus.NewDesc(Namespace+"_names_waiting",
		"Names waiting for their self-test to pass before they are ordered (docs/readiness.md), by reason: dns, http, tls_alpn, dns01, dns_persist, probe.",
		[]string{"reason"}, nil)
)

// waitReasons are the reasons certfleet_names_waiting always reports (0
// when none waits for it), so a dashboard's series never vanish.
var waitReasons = []string{certfleet.WaitDNS, certfleet.WaitHTTP, certfleet.WaitTLSALPN, certfleet.WaitDNS01, certfleet.WaitPersist, certfleet.WaitProbe}

// storeCollector reads the store at each scrape.
type storeCollector struct{ m *Metrics }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNotAfter, descNotBefore, descJobs, descJobsDue, descJobsFailing, descJobsNotWritten, descCertNotWritten, descLeases, descAgentLast, descReadiness, descWaiting} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	now := m.now()

	if st, err := m.store.JobStats(ctx, now); err != nil {
		ch <- prometheus.NewInvalidMetric(descJobs, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(st.Jobs))
		ch <- prometheus.MustNewConstMetric(descJobsDue, prometheus.GaugeValue, float64(st.Due))
		ch <- prometheus.MustNewConstMetric(descJobsFailing, prometheus.GaugeValue, float64(st.Failing))
		ch <- prometheus.MustNewConstMetric(descJobsNotWritten, prometheus.GaugeValue, float64(st.NotWritten))
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(st.LeasesHeld), "held")
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(st.LeasesExpired), "expired")
	}

	if ws, ok := m.store.(certfleet.ReadinessStore); ok {
		if counts, err := ws.CountWaiting(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(descWaiting, err)
		} else {
			for _, r := range waitReasons {
				ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(counts[r]), r)
			}
		}
	}

	var reports []certfleet.AgentReport
	reportsOK := true
	if m.fleet != nil {
		var err error
		if reports, err = m.agentReports(ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(descAgentLast, err)
			reportsOK = false
		}
		last := map[string]time.Time{}
		for _, r := range reports {
			if r.ReportedAt.After(last[r.Agent]) {
				last[r.Agent] = r.ReportedAt
			}
		}
		for agent, at := range last {
			ch <- prometheus.MustNewConstMetric(descAgentLast, prometheus.GaugeValue, unix(at), agent)
		}
	}

	// Every current certificate, a page at a time; readiness keeps only
	// those it looks at.
	need := m.readiness.needed(reports)
	var certs []certfleet.CurrentCertificate
	err := certfleet.EachCurrentCertificate(ctx, m.store, certfleet.CurrentFilter{}, func(cc certfleet.CurrentCertificate) error {
		kt := string(cc.KeyType)
		ch <- prometheus.MustNewConstMetric(descNotAfter, prometheus.GaugeValue, unix(cc.NotAfter), cc.Spec, kt)
		ch <- prometheus.MustNewConstMetric(descNotBefore, prometheus.GaugeValue, unix(cc.NotBefore), cc.Spec, kt)
		notWritten := 0.0
		if cc.Deploy.NotWritten() {
			notWritten = 1
		}
		ch <- prometheus.MustNewConstMetric(descCertNotWritten, prometheus.GaugeValue, notWritten, cc.Spec, kt)
		if need[certfleet.JobKey{Spec: cc.Spec, KeyType: cc.KeyType}] {
			certs = append(certs, cc)
		}
		return nil
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descNotAfter, err)
		return
	}
	if !reportsOK {
		return
	}

	seen := map[[3]string]bool{}
	for _, v := range m.readiness.evaluate(now, certs, reports) {
		k := [3]string{v.Certificate, v.Source, v.Subject}
		if seen[k] { // both key types of a dual certificate
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(descReadiness, prometheus.GaugeValue, 1, k[:]...)
	}
}

// unix is t in Unix seconds, with sub-second precision.
func unix(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
