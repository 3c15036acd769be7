package httpapi

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
)

func (s *Server) postCSR(w http.ResponseWriter, r *http.Request, p principal) {
	id, prob := s.parseHostname(r, p)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	var req NameRequest
	body, prob := readBody(r)
	if prob != nil {
		s.fail(w, r, false, prob)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		r.Body = http.NoBody
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(w, r, false, problemf(certfleet.EINVALID, "body: %v", err))
			return
		}
	} else {
		req.CSR = string(body) // application/pkcs10 (PEM) or text
	}
	if strings.TrimSpace(req.CSR) == "" {
		s.fail(w, r, false, problemf(certfleet.EINVALID, "send a PEM certificate request as the body"))
		return
	}
	s.requestName(w, r, p, id, req, []byte(req.CSR))
}

// ParseCSR checks a PEM (or DER) certificate request for CSR mode: its
// signature, its names (DNS names and IP addresses only, each valid,
// normalised, none twice, at most certfleet.MaxIdentifiers; a subject
// common name must be one of them) and its key (a type certfleet issues
// for). Errors are EINVALID and say what is wrong.
func ParseCSR(data []byte) (*x509.CertificateRequest, []certfleet.Identifier, certfleet.KeyType, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, nil, "", errorf(certfleet.EINVALID, "CSR: PEM block is %q, not CERTIFICATE REQUEST", block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: not a valid certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: bad signature: %v", err)
	}
	kt, err := certfleet.KeyTypeOf(csr.PublicKey)
	if err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: %v", err)
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: only DNS names and IP addresses can be certified, not e-mail addresses or URIs")
	}
	values := slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		values = append(values, ip.String())
	}
	ids, err := certfleet.ParseIdentifiers(values)
	if err != nil {
		return nil, nil, "", errorf(certfleet.EINVALID, "CSR: %v", err)
	}
	for i, id := range ids {
		if id.Type == certfleet.IdentifierDNS && id.Value != values[i] {
			return nil, nil, "", errorf(certfleet.EINVALID, "CSR: name %q must be written in its normalised form %q", values[i], id.Value)
		}
	}
	if cn := csr.Subject.CommonName; cn != "" {
		cid, err := certfleet.ParseIdentifier(cn)
		if err != nil || !slices.Contains(ids, cid) {
			return nil, nil, "", errorf(certfleet.EINVALID, "CSR: the common name %q is not among its subject alternative names", cn)
		}
	}
	return csr, ids, kt, nil
}
