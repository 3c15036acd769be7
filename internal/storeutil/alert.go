package storeutil

import "github.com/certfleet/certfleet"

// DefaultIncidentLimit is how many incidents certfleet.IncidentStore.Incidents
// lists when the filter sets no limit.
const DefaultIncidentLimit = 100

// CheckObservation is the validation of certfleet.IncidentStore.ObserveIncident.
func CheckObservation(i certfleet.Incident) error {
	switch {
	case i.Key == "" || i.Kind == "" || i.Certificate == "":
		return certfleet.Errorf(certfleet.EINVALID, "incident: key, kind and certificate required")
	case i.Severity.Rank() == 0:
		return certfleet.Errorf(certfleet.EINVALID, "incident %s: unknown severity %q", i.Key, i.Severity)
	case i.UpdatedAt.IsZero():
		return certfleet.Errorf(certfleet.EINVALID, "incident %s: observation time required", i.Key)
	}
	return nil
}
