package alert

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
)

// notWritten opens an incident for each certificate issued but not
// written to its outputs (certfleet.IncidentNotWritten): a warning, and
// critical once the certificate itself would be (the files in place are
// older, and may be expiring). The round reads only the jobs not written,
// which the store selects.
func (r *round) notWritten(ctx context.Context, add func(certfleet.Incident)) error {
	jobs, err := r.e.Store.Jobs(ctx, certfleet.JobFilter{NotWritten: true})
	if err != nil {
		return fmt.Errorf("list certificates not written: %w", err)
	}
	for _, j := range jobs {
		if j.CurrentID == 0 {
			continue
		}
		iss, err := r.e.Store.Issuance(ctx, j.CurrentID)
		if err != nil {
			return fmt.Errorf("issuance %d of %s: %w", j.CurrentID, j.JobKey, err)
		}
		add(r.notWrittenIncident(j, iss))
	}
	return nil
}

// notWrittenScope is notWritten for a round over some certificates: the
// lineages it loaded carry their jobs' deploy state.
func (r *round) notWrittenScope(add func(certfleet.Incident)) {
	for _, l := range r.lineages {
		if l.job.Deploy.Error != "" && l.job.CurrentID != 0 {
			add(r.notWrittenIncident(l.job, l.current))
		}
	}
}

// notWrittenIncident is the incident of job j, whose current issuance iss
// is not written.
func (r *round) notWrittenIncident(j certfleet.Job, iss certfleet.Issuance) certfleet.Incident {
	sev := certfleet.SeverityWarning
	if r.severity(iss.NotAfter, lifetime(iss)) != certfleet.SeverityWarning ||
		iss.NotAfter.Sub(r.now) <= r.e.Settings.Warning(lifetime(iss)) {
		sev = certfleet.SeverityCritical
	}
	return certfleet.Incident{
		Key:  certfleet.IncidentKey(certfleet.IncidentNotWritten, j.Spec, j.KeyType, ""),
		Kind: certfleet.IncidentNotWritten, Certificate: j.Spec, KeyType: j.KeyType, Severity: sev,
		Summary: fmt.Sprintf("certificate %s (%s, serial %s) was issued but its files are not written (%d failed tries; next try %s): %s",
			j.Spec, j.KeyType, certfleet.FormatSerial(iss.Serial), j.Deploy.Failures, stamp(j.Deploy.NextAt), oneLine(j.Deploy.Error, 300)),
		Serial: iss.Serial, NotAfter: iss.NotAfter, Failures: j.Deploy.Failures,
		LastError: oneLine(j.Deploy.Error, 1000), UpdatedAt: r.now,
	}
}
