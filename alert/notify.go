package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// Notification is what notifiers send: one transition of one incident. Its
// JSON form is the webhook's body and the command's stdin (docs/alerts.md).
type Notification struct {
	// DeliveryID is the same for every attempt to send this transition
	// (also the webhook's Idempotency-Key): receivers may drop repeats.
	DeliveryID string `json:"delivery_id"`
	IncidentID int64  `json:"incident_id"`
	// State is certfleet.NotifyOpened, NotifyWorsened or NotifyResolved.
	State    string             `json:"state"`
	Kind     string             `json:"kind"`
	Severity certfleet.Severity `json:"severity"`
	// PreviousSeverity is the severity last announced (worsened, resolved).
	PreviousSeverity certfleet.Severity `json:"previous_severity,omitempty"`
	Certificate      string             `json:"certificate"`
	KeyType          certfleet.KeyType  `json:"key_type,omitempty"`
	Agent            string             `json:"agent,omitempty"`
	Endpoint         string             `json:"endpoint,omitempty"`
	Serial           string             `json:"serial,omitempty"`
	NotAfter         time.Time          `json:"not_after,omitzero"`
	Failures         int                `json:"failures"`
	LastError        string             `json:"last_error,omitempty"`
	Summary          string             `json:"summary"`
	OpenedAt         time.Time          `json:"opened_at"`
	UpdatedAt        time.Time          `json:"updated_at"`
	ResolvedAt       time.Time          `json:"resolved_at,omitzero"`
	SentAt           time.Time          `json:"sent_at"`
	// Instance is the certfleet instance that sent it.
	Instance string `json:"instance"`
}

func newNotification(inc certfleet.Incident, state, instance string, now time.Time) Notification {
	n := Notification{
		IncidentID: inc.ID, State: state, Kind: inc.Kind, Severity: inc.Severity,
		PreviousSeverity: inc.NotifiedSeverity, Certificate: inc.Certificate, KeyType: inc.KeyType,
		Serial: certfleet.FormatSerial(inc.Serial), NotAfter: inc.NotAfter, Failures: inc.Failures, LastError: inc.LastError,
		Summary: inc.Summary, OpenedAt: inc.OpenedAt, UpdatedAt: inc.UpdatedAt, ResolvedAt: inc.ResolvedAt,
		SentAt: now.UTC(), Instance: instance,
	}
	switch inc.Kind {
	case certfleet.IncidentAgentStale:
		n.Agent = inc.Subject
	case certfleet.IncidentEndpointStale:
		n.Endpoint = inc.Subject
	}
	n.DeliveryID = fmt.Sprintf("certfleet-incident-%d-%s", inc.ID, state)
	if state != certfleet.NotifyResolved {
		n.DeliveryID += "-" + string(inc.Severity)
	}
	if state == certfleet.NotifyResolved {
		n.Summary = "resolved: " + inc.Summary
	}
	return n
}

// Notifier delivers notifications. Notify returns nil only when the
// notification was delivered; it must respect ctx's deadline.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Webhook defaults.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookRetries = 2
	webhookBackoff        = time.Second
	maxResponseTail       = 512
)

// Webhook POSTs each notification as JSON. A 2xx answer is a delivery;
// network errors, 408, 429 and 5xx answers are retried within the call
// with a doubling backoff (1 s, 2 s, ...); other answers fail at once.
// Either way a failed notification stays owed and is sent again next round.
type Webhook struct {
	// URL receives the POSTs. It may hold a secret (chat services put one
	// in the path): errors and logs show only its scheme and host.
	URL string
	// BearerToken, if set, is sent as "Authorization: Bearer ...". Never
	// logged.
	BearerToken string
	// Timeout bounds each attempt. Default DefaultWebhookTimeout.
	Timeout time.Duration
	// Retries is how many more attempts follow a failed one; negative
	// means none. Default (0) DefaultWebhookRetries; set -1 for none.
	Retries int
	// Client sends the requests. Default: a client with the default
	// transport.
	Client *http.Client
}

// RedactURL shows where a URL points without what may be secret in it:
// scheme and host only.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("webhook %s: encode notification: %w", RedactURL(w.URL), err)
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	retries := w.Retries
	switch {
	case retries == 0:
		retries = DefaultWebhookRetries
	case retries < 0:
		retries = 0
	}
	client := w.Client
	if client == nil {
		client = &http.Client{}
	}
	backoff := webhookBackoff
	var last error
	for attempt := 0; ; attempt++ {
		retry, err := w.post(ctx, client, timeout, body, n.DeliveryID)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt >= retries {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting to retry: %v)", last, ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return fmt.Errorf("%w (after %d attempt(s); it stays owed and is sent again next round)", last, retries+1)
}

// post makes one attempt; retry says whether another may succeed.
func (w *Webhook) post(ctx context.Context, client *http.Client, timeout time.Duration, body []byte, id string) (retry bool, err error) {
	where := RedactURL(w.URL)
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook %s: %v", where, stripURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certfleet-alerts")
	req.Header.Set("Idempotency-Key", id)
	if w.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+w.BearerToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return true, fmt.Errorf("webhook %s: %v", where, stripURL(err))
	}
	defer resp.Body.Close()
	tail, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseTail))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	msg := fmt.Sprintf("webhook %s answered %s", where, resp.Status)
	if t := oneLine(string(tail), 200); t != "" {
		msg += ": " + t
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil {
			msg += fmt.Sprintf(" (Retry-After %ds)", s)
		}
	}
	code := resp.StatusCode
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500, errors.New(msg)
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
