package deploy

import "github.com/certfleet/certfleet"

// CommandEnv returns the environment Write gives Target.Commands for an
// issuance written to dir (os.Environ() plus the CERTFLEET_* variables), for
// callers that run those commands themselves (after writing extra copies).
func CommandEnv(dir string, spec certfleet.CertificateSpec, iss certfleet.Issuance) []string {
	return commandEnv(dir, spec, iss)
}
