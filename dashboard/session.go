package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// cookieName is the session cookie. The __Host- prefix is not used because
// the cookie is scoped to the dashboard's path, which that prefix forbids.
const cookieName = "certfleet_session"

// session is a login: which token, until when. The cookie carries
// "v1.TOKENID.EXPIRY.NONCE.MAC", where MAC is HMAC-SHA256 under the
// server's session key of everything before it. It never holds the token's
// secret or hash: a stolen cookie works only until it expires, only on this
// dashboard, and only while the token is valid.
type session struct {
	TokenID string
	Expires time.Time
	Nonce   string // random; names the session for logout and its CSRF token
}

func (s *Server) mac(msg string) []byte {
	m := hmac.New(sha256.New, s.SessionKey)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (s *Server) encodeSession(ss session) string {
	payload := "v1." + ss.TokenID + "." + strconv.FormatInt(ss.Expires.Unix(), 10) + "." + ss.Nonce
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac("session\x00"+payload))
}

// decodeSession checks a cookie's signature and expiry.
func (s *Server) decodeSession(v string) (session, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return session{}, false
	}
	payload, sig := v[:i], v[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session\x00"+payload)) {
		return session{}, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 4 || parts[0] != "v1" {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return session{}, false
	}
	ss := session{TokenID: parts[1], Expires: time.Unix(exp, 0), Nonce: parts[3]}
	if !s.Now().Before(ss.Expires) {
		return session{}, false
	}
	return ss, true
}

// csrfToken is the hidden field of the session's forms: derived from the
// session's nonce, which only the HttpOnly cookie holds, so another site
// can neither read nor compute it.
func (s *Server) csrfToken(ss session) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf\x00" + ss.Nonce))
}

func (s *Server) checkCSRF(r *http.Request, ss session) bool {
	got, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("csrf"))
	return err == nil && hmac.Equal(got, s.mac("csrf\x00"+ss.Nonce))
}

// user is the logged-in operator.
type user struct {
	token   certfleet.Token
	session session
}

// Admin reports whether the user may retry.
func (u *user) Admin() bool { return u.token.Has(certfleet.PermAdmin) }

// Name is how the page names the user.
func (u *user) Name() string {
	if u.token.Description != "" {
		return u.token.Description + " (" + u.token.ID + ")"
	}
	return u.token.ID
}

// loginProblem says why a token may not use the dashboard ("" if it may).
func loginProblem(t certfleet.Token) string {
	switch {
	case t.Revoked():
		return "This token has been revoked. Ask for a new one (certfleet token create)."
	case t.URLCredential:
		return "This token is a URL credential (for Bud and Caddy) and cannot log in. Use an ordinary token with the read-certs permission."
	case !t.Has(certfleet.PermReadCerts):
		return "This token lacks the read-certs permission, which the dashboard needs. Create one with -permissions read-certs (or admin to retry)."
	}
	return ""
}

// currentUser returns the session's user, re-checked against the token
// store: a token revoked (or stripped of read-certs) since the login ends
// the session at its next request. Without a user, why says why the
// session ended ("" for no session). An error is a store that cannot be
// read: the session may well be valid, so it is not ended.
func (s *Server) currentUser(r *http.Request) (u *user, why string, err error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, "", nil
	}
	ss, ok := s.decodeSession(c.Value)
	if !ok {
		return nil, "Your session has expired. Log in again.", nil
	}
	s.outMu.Lock()
	_, gone := s.out[ss.Nonce]
	s.outMu.Unlock()
	if gone {
		return nil, "You have logged out.", nil
	}
	t, err := s.Store.Token(r.Context(), ss.TokenID)
	switch {
	case certfleet.ErrorCode(err) == certfleet.ENOTFOUND:
		return nil, "You have been logged out: the token no longer exists.", nil
	case err != nil:
		return nil, "", err
	}
	if p := loginProblem(t); p != "" {
		return nil, "You have been logged out: " + p, nil
	}
	return &user{token: t, session: ss}, "", nil
}

// withUser runs h for a logged-in user; anyone else is sent to the login
// page (GET) or refused (POST: nothing is done without a session).
func (s *Server) withUser(h func(w http.ResponseWriter, r *http.Request, u *user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, why, err := s.currentUser(r)
		if err != nil {
			s.storeError(w, r, nil, "check this session's API token", err)
			return
		}
		if u == nil {
			if why != "" {
				s.clearCookie(w, r)
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.errorPage(w, r, nil, http.StatusUnauthorized, "Log in first. "+why)
				return
			}
			s.renderLogin(w, r, http.StatusOK, why)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !s.checkCSRF(r, u.session) {
				s.errorPage(w, r, u, http.StatusForbidden, "This form was not sent by this dashboard session (the CSRF token is missing or wrong). Reload the page and try again.")
				return
			}
		}
		h(w, r, u)
	}
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if u, _, _ := s.currentUser(r); u != nil {
		http.Redirect(w, r, s.Prefix+"/", http.StatusSeeOther)
		return
	}
	p := page{Title: "Log in"}
	if r.URL.Query().Has("bye") {
		p.Flash = "You have logged out."
	}
	s.render(w, r, http.StatusOK, "login", p)
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "login", page{Title: "Log in", Error: msg})
}

// login checks a pasted token and starts a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	secret := strings.TrimSpace(r.PostFormValue("token"))
	if !strings.HasPrefix(secret, certfleet.TokenPrefix) {
		s.renderLogin(w, r, http.StatusUnauthorized, "That is not a certfleet API token: tokens start with "+certfleet.TokenPrefix+" (certfleet token create prints one).")
		return
	}
	hash := certfleet.HashTokenSecret(secret)
	t, err := s.Store.TokenByHash(r.Context(), hash)
	// Unknown and revoked tokens get the same answer, as in the API.
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND || (err == nil && (t.Revoked() || !certfleet.TokenHashEqual(t.Hash, hash))) {
		s.Logger.Info("dashboard login refused: unknown token", "remote", r.RemoteAddr)
		s.renderLogin(w, r, http.StatusUnauthorized, "This token is not valid: it is unknown or was revoked.")
		return
	} else if err != nil {
		s.Logger.Error("dashboard login: look up API token", certfleet.LogError, err)
		s.renderLogin(w, r, http.StatusServiceUnavailable, "The token cannot be checked now (the store is unavailable); try again in a moment.")
		return
	}
	if p := loginProblem(t); p != "" {
		s.Logger.Info("dashboard login refused", "token", t.ID, "remote", r.RemoteAddr, "why", p)
		s.renderLogin(w, r, http.StatusForbidden, p)
		return
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	ss := session{TokenID: t.ID, Expires: s.Now().Add(s.SessionTTL), Nonce: hex.EncodeToString(nonce[:])}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.encodeSession(ss), Path: s.Prefix + "/",
		Expires: ss.Expires, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r),
	})
	s.Logger.Info("dashboard login", "token", t.ID, "remote", r.RemoteAddr)
	http.Redirect(w, r, s.Prefix+"/", http.StatusSeeOther)
}

// logout ends the session: the cookie is cleared and its nonce remembered
// until it would have expired, so a copy of the cookie is refused too (on
// this instance; other instances forget it only when it expires).
func (s *Server) logout(w http.ResponseWriter, r *http.Request, u *user) {
	now := s.Now()
	s.outMu.Lock()
	if s.out == nil {
		s.out = make(map[string]time.Time)
	}
	for n, exp := range s.out {
		if !now.Before(exp) {
			delete(s.out, n)
		}
	}
	s.out[u.session.Nonce] = u.session.Expires
	s.outMu.Unlock()
	s.clearCookie(w, r)
	s.Logger.Info("dashboard logout", "token", u.token.ID, "remote", r.RemoteAddr)
	http.Redirect(w, r, s.Prefix+"/login?bye=1", http.StatusSeeOther)
}

func (s *Server) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: s.Prefix + "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
}

func (s *Server) secure(r *http.Request) bool { return s.SecureCookie || r.TLS != nil }

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}
