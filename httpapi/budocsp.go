package httpapi

import (
	"io"
	"net/http"
)

// budOCSPPost answers the POST Bud sends to its stapling backend when a
// certificate names an OCSP responder: the body is JSON ({"url": the
// responder, "ocsp": the request}), and Bud staples the "response" of a 200
// answer and nothing on any other JSON answer. certfleet staples nothing —
// Let's Encrypt ended OCSP in 2025 and its certificates name no responder —
// so the answer is the GET's JSON 404 ({}), which Bud takes as "no
// staple". Answering 405 made Bud log a failure at every handshake (issue
// 17). certfleet never fetches the URL in the body: the endpoint would
// otherwise let any holder of a read-certs credential make the server send
// requests where it chooses.
func (s *Server) budOCSPPost(w http.ResponseWriter, r *http.Request, p principal) {
	// Drain what Bud sent (bounded by dispatch's MaxBytesReader) so the
	// connection Bud pools can carry its next request.
	io.Copy(io.Discard, r.Body)
	s.budOCSP(w, r, p)
}
