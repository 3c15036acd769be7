package httpapi

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// Identities is what the Server needs of host identities
// (identity.Authority implements it). Every method is safe for concurrent
// use; errors carry certfleet codes: EUNAUTHORIZED for a refused
// credential, EINVALID for a bad CSR, anything else is the server's.
type Identities interface {
	// Authenticate returns the principal of a verified client
	// certificate chain (leaf first).
	Authenticate(ctx context.Context, chain []*x509.Certificate) (certfleet.Token, error)
	// Enroll uses a one-time enrollment token's secret to create an
	// identity named name for the key of csrPEM.
	Enroll(ctx context.Context, secret, name string, csrPEM []byte, remote string) (certfleet.IdentityCertificate, error)
	// Renew issues identity id a new certificate for the key of csrPEM.
	Renew(ctx context.Context, id string, csrPEM []byte, remote string) (certfleet.IdentityCertificate, error)
}

// IdentityRequest is the JSON body of POST /v1/identities/enroll and
// /v1/identities/renew. Unknown fields are refused.
type IdentityRequest struct {
	// Name is what the host calls itself (its agent name); enrollment
	// only, default "host".
	Name string `json:"name,omitempty"`
	// CSR is the host's PEM certificate request: the key stays on the
	// host. Its subject and names are ignored.
	CSR string `json:"csr"`
}

// IdentityIssued is the answer of enrollment and renewal.
type IdentityIssued struct {
	// Identity is the identity's ID (the certificate's subject CN).
	Identity string `json:"identity"`
	// Names, Permissions and Tenant are its scope (the enrollment
	// token's).
	Names       []string               `json:"names"`
	Permissions []certfleet.Permission `json:"permissions"`
	Tenant      string                 `json:"tenant,omitempty"`
	// Certificate is the client certificate, PEM; CA the identity CA's
	// certificate, PEM.
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	NotAfter    time.Time `json:"not_after"`
}

// authenticateCert authenticates a request by its TLS client certificate.
func (s *Server) authenticateCert(r *http.Request) (principal, *Problem) {
	if s.Identities == nil {
		return principal{}, problemf(codeUnauthenticated, "client certificates are not accepted here; send a token: Authorization: Bearer cft_…")
	}
	t, err := s.Identities.Authenticate(r.Context(), r.TLS.PeerCertificates)
	if certfleet.ErrorCode(err) == certfleet.EUNAUTHORIZED {
		return principal{}, problemf(codeUnauthenticated, "%s", certfleet.ErrorMessage(err))
	} else if err != nil {
		s.Logger.Error("check client certificate", certfleet.LogError, err)
		return principal{}, problemf(certfleet.EUNAVAILABLE, "cannot check the client certificate now; retry")
	}
	return principal{token: t, identity: true}, nil
}

func (s *Server) enrollIdentity(w http.ResponseWriter, r *http.Request, _ principal) {
	if s.Identities == nil {
		s.fail(w, r, false, problemf(certfleet.ENOTFOUND, "host identities are not served here"))
		return
	}
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="certfleet"`)
		s.fail(w, r, false, problemf(codeUnauthenticated, "send the enrollment token: Authorization: Bearer cfe_…"))
		return
	}
	var req IdentityRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	iss, err := s.Identities.Enroll(r.Context(), strings.TrimSpace(secret), req.Name, []byte(req.CSR), r.RemoteAddr)
	s.identityReply(w, r, iss, err, http.StatusCreated)
}

func (s *Server) renewIdentity(w http.ResponseWriter, r *http.Request, p principal) {
	var req IdentityRequest
	if prob := decodeJSON(r, &req); prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	iss, err := s.Identities.Renew(r.Context(), p.token.ID, []byte(req.CSR), r.RemoteAddr)
	s.identityReply(w, r, iss, err, http.StatusOK)
}

func (s *Server) identityReply(w http.ResponseWriter, r *http.Request, iss certfleet.IdentityCertificate, err error, status int) {
	switch certfleet.ErrorCode(err) {
	case "":
	case certfleet.EUNAUTHORIZED:
		w.Header().Set("WWW-Authenticate", `Bearer realm="certfleet"`)
		s.fail(w, r, false, problemf(codeUnauthenticated, "%s", certfleet.ErrorMessage(err)))
		return
	default:
		s.internal(w, r, "host identity", err)
		return
	}
	i := iss.Identity
	writeReply(w, r, jsonReply(status, IdentityIssued{Identity: i.ID, Names: i.Names, Permissions: i.Permissions, Tenant: i.Tenant,
		Certificate: string(iss.CertPEM), CA: string(iss.CAPEM), NotAfter: i.NotAfter}))
}
