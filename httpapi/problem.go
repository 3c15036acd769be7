package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/certfleet/certfleet"
)

// Problem is an RFC 9457 problem document: every error the API returns is
// one, with Content-Type application/problem+json. The client returns it as
// an error.
type Problem struct {
	// Type is a URI naming the kind of problem (RFC 9457 §3.1.1):
	// "urn:certfleet:problem:" followed by the code.
	Type string `json:"type"`
	// Title is a short summary of the kind of problem.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence (RFC 9457 §3.1.4): what failed and
	// what to do. Internal errors get a generic text; details go to the log.
	Detail string `json:"detail,omitempty"`
	// Instance is the request path (never for URL-credential requests,
	// whose path holds a secret).
	Instance string `json:"instance,omitempty"`
	// Code is the certfleet error code (an extension member, RFC 9457
	// §3.2), for programs.
	Code string `json:"code"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("certfleet API: %d %s: %s", p.Status, p.Title, p.Detail)
}

// API error codes besides certfleet's own.
const (
	codeUnauthenticated  = "unauthenticated"
	codeForbidden        = "forbidden"
	codeMethodNotAllowed = "method_not_allowed"
	codeTooLarge         = "too_large"
	codeUnsupportedType  = "unsupported_media_type"
)

// statusOf maps error codes to HTTP status: the one table (STYLE.md §5).
var statusOf = map[string]int{
	certfleet.EINVALID:      http.StatusBadRequest,
	certfleet.ENOTFOUND:     http.StatusNotFound,
	certfleet.ECONFLICT:     http.StatusConflict,
	certfleet.EUNAUTHORIZED: http.StatusForbidden,
	certfleet.ERATELIMITED:  http.StatusTooManyRequests,
	certfleet.ELEASELOST:    http.StatusConflict,
	certfleet.EUNAVAILABLE:  http.StatusServiceUnavailable,
	certfleet.EINTERNAL:     http.StatusInternalServerError,
	certfleet.EQUOTA:        http.StatusForbidden, // a tenant's limit: raised by the operator, not by waiting
	codeUnauthenticated:     http.StatusUnauthorized,
	codeForbidden:           http.StatusForbidden,
	codeMethodNotAllowed:    http.StatusMethodNotAllowed,
	codeTooLarge:            http.StatusRequestEntityTooLarge,
	codeUnsupportedType:     http.StatusUnsupportedMediaType,
}

// problemFor makes the problem document of err.
func problemFor(err error) *Problem {
	code := certfleet.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = certfleet.EINTERNAL, http.StatusInternalServerError
	}
	return &Problem{
		Type:   "urn:certfleet:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: certfleet.ErrorMessage(err),
		Code:   code,
	}
}

func problemf(code, format string, args ...any) *Problem {
	return problemFor(certfleet.Errorf(code, format, args...))
}

// body encodes the problem.
func (p *Problem) body() []byte {
	b, _ := json.Marshal(p)
	return append(b, '\n')
}

// reply is a response computed before it is written, so that long-polls can
// compare it with the client's ETag and wait.
type reply struct {
	status int
	ctype  string
	etag   string // quoted; "" for none
	body   []byte
	header http.Header // extra headers
	// keyRead, when set, is recorded before a 200 is sent: the reply
	// holds a private key.
	keyRead *certfleet.KeyRead
	// consumer, when set with keyRead, names a handshake-driven
	// consumer's endpoint ("get_certificate", "bud"): its repeated reads
	// of one key version are aggregated (keyreads.go).
	consumer string
}

func problemReply(p *Problem) reply {
	return reply{status: p.Status, ctype: "application/problem+json", body: p.body()}
}

func jsonReply(status int, v any) reply {
	b, err := json.MarshalIndent(v, "", "  ")
	return jsonBody(status, b, err)
}

// compactJSONReply is jsonReply without indentation, for large bodies
// (a list page of more than DefaultPageSize certificates, issue 13):
// indenting 500 KB cost a tenth of such a page's time and a third more
// bytes, for readers that are programs.
func compactJSONReply(status int, v any) reply {
	b, err := json.Marshal(v)
	return jsonBody(status, b, err)
}

func jsonBody(status int, b []byte, err error) reply {
	if err != nil {
		return problemReply(problemf(certfleet.EINTERNAL, "internal error"))
	}
	b = append(b, '\n')
	return reply{status: status, ctype: "application/json", etag: etagOf(b), body: b}
}
