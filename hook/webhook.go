package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The webhook's headers (docs/events.md).
const (
	// HeaderTimestamp carries the time of the attempt, in Unix seconds.
	HeaderTimestamp = "Certfleet-Timestamp"
	// HeaderSignature carries "v1=" and the hex HMAC-SHA256, under the
	// hook's secret, of the timestamp, a '.', and the body.
	HeaderSignature = "Certfleet-Signature"
	// HeaderEvent carries the event's type.
	HeaderEvent = "Certfleet-Event"
	// HeaderIdempotencyKey carries Payload.Key.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// DefaultWebhookTimeout bounds one webhook request.
const DefaultWebhookTimeout = 10 * time.Second

// DefaultSignatureTolerance is how far a signature's timestamp may be from
// the receiver's clock in Verify: enough for clocks a little apart and a
// slow network, short enough that a captured request cannot be replayed
// much later.
const DefaultSignatureTolerance = 5 * time.Minute

// maxResponseTail is how much of a refusing answer's body an error keeps.
const maxResponseTail = 512

// Webhook POSTs each payload as JSON, signed with Secret. A 2xx answer is a
// delivery; anything else (or no answer within Timeout) fails it, and the
// Dispatcher tries again later with the same body and key.
type Webhook struct {
	// URL receives the POSTs. It may hold a secret: errors show only its
	// scheme and host.
	URL string
	// Secret is the HMAC-SHA256 key of the signature header; empty sends
	// no signature (the config always sets one). Never logged.
	Secret []byte
	// Timeout bounds each request. Default DefaultWebhookTimeout.
	Timeout time.Duration
	// Client sends the requests. Default: one with the default transport.
	Client *http.Client
	// Now is the clock of the timestamp. Default time.Now.
	Now func() time.Time
}

// Sign returns the signature header's value for body sent at timestamp
// (Unix seconds, as in the timestamp header): "v1=" and the hex
// HMAC-SHA256 under secret of the timestamp's decimal digits, a '.', and
// the body.
func Sign(secret []byte, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request as a receiver must: the signature of
// the timestamp and body under secret, compared in constant time, and the
// timestamp within tolerance of now (DefaultSignatureTolerance when 0),
// which bounds replays. A signature header may hold several
// comma-separated values (during a secret's rotation); one must match.
func Verify(secret []byte, timestampHeader, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(timestampHeader), 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q: not Unix seconds", HeaderTimestamp, timestampHeader)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s is %s away from this clock, beyond %s: refusing a stale or replayed request", HeaderTimestamp, d.Abs().Round(time.Second), tolerance)
	}
	want := Sign(secret, ts, body)
	for _, got := range strings.Split(signatureHeader, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(got)), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("%s does not match the body and timestamp under the secret", HeaderSignature)
}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, p Payload, body []byte) error {
	where := redactURL(w.URL)
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	client := w.Client
	if client == nil {
		client = &http.Client{}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %v", where, stripURL(err))
	}
	ts := now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certfleet-events")
	req.Header.Set(HeaderIdempotencyKey, p.Key)
	req.Header.Set(HeaderEvent, p.Type)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if len(w.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.Secret, ts, body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %v", where, stripURL(err))
	}
	defer resp.Body.Close()
	tail, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseTail))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	msg := fmt.Sprintf("webhook %s answered %s", where, resp.Status)
	if t := oneLine(string(tail), 200); t != "" {
		msg += ": " + t
	}
	return errors.New(msg)
}

// redactURL shows where a URL points without what may be secret in it:
// scheme and host only.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// stripURL removes the URL (which may hold a secret) from an HTTP client
// error, keeping the cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// oneLine squeezes s onto one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
