package acmeissuer

// Finding the order of an interrupted placing (issue 16): an instance that
// died between the CA creating an order and the store saving its URL left
// only a mark (certfleet.Job.Placing); the order is looked up in the
// account's orders list instead of being placed a second time.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

const (
	// maxOrderPages bounds the walk of an account's orders list: Pebble
	// lists 3 orders a page unless told otherwise, so 2,000 pages are
	// 6,000 orders, and the walk runs only after an interrupted placing.
	maxOrderPages = 2000
	// maxPlacedLookups bounds how many listed orders are fetched, from
	// the first that may be newer than the mark on, to find the
	// interrupted one. It is among the first of them; a search that
	// cannot tell where to start (no expiries) looks at the oldest.
	maxPlacedLookups = 256
	// placedParallel orders are fetched at a time.
	placedParallel = 16
	// placingReach: an order whose mark was saved at t reached the CA by
	// t+placingReach (the mark is saved just before newOrder is sent),
	// so a walk of the orders list begun later lists it and can serve
	// that lookup (orderWalk).
	placingReach = 5 * time.Second
	// orderAgeMargin: see findPlaced's stop rule.
	orderAgeMargin = 5 * time.Second
)

// findPlaced looks for the order of the interrupted placing req.Placed
// among the account's orders (RFC 8555 §7.1.2.1): the newest listed order
// for the same identifiers that is still pending or ready and not one of
// req.NotOrders. ok is false when there is none, when it was placed with
// another account, or when the CA offers no orders list (Boulder, and so
// Let's Encrypt, does not): the caller places a new order. An unreachable
// CA is an error.
//
// Only pending and ready orders are taken: the URL of an order is saved
// before any challenge is answered (OnOrder), so an interrupted placing's
// order was never finalized by us, and a valid or processing order for
// the same names is another job's.
func (i *Issuer) findPlaced(ctx context.Context, acct acme.Account, req certfleet.IssueRequest, lg *slog.Logger) (acme.Order, bool, error) {
	p := req.Placed
	if p.Account != acct.Location {
		lg.Info("an interrupted order was placed with another account; placing a new one", "account", p.Account)
		return acme.Order{}, false, nil
	}
	list, err := i.ordersListURL(ctx, acct)
	if err != nil {
		return acme.Order{}, false, err
	}
	if list == "" {
		i.noList.Do(func() {
			i.logger.Warn("the CA offers no orders list (RFC 8555 §7.1.2.1): an order whose placing was interrupted "+
				"before its URL was saved (an instance killed at that moment) cannot be found and is placed again",
				"ca", i.cfg.DirectoryURL)
		})
		return acme.Order{}, false, nil
	}
	began := time.Now()
	w, err := i.orderWalk(ctx, acct, list, p.At.Add(placingReach))
	if err != nil {
		return acme.Order{}, false, err
	}
	urls := w.urls
	listed := time.Since(began)
	var cands []string
	for _, u := range urls {
		if !slices.Contains(req.NotOrders, u) {
			cands = append(cands, u)
		}
	}
	fetched := 0
	get := func(ctx context.Context, u string) (acme.Order, bool) {
		if o, ok := w.order(u); ok && !sameIdentifiers(o.Identifiers, req.Spec.Identifiers) {
			return o, true // another certificate's: no need to ask again
		}
		o, err := i.client.GetOrder(withEndpoint(ctx, EndpointOrder), acct, acme.Order{Location: u})
		if err != nil {
			return acme.Order{}, false // one unreadable order does not end the search
		}
		o.Location = u
		w.keep(o)
		return o, true
	}
	// Ours: Pebble lists an account's orders oldest first, and gives
	// every order the same lifetime, so their expiries grow along the
	// list. The newest order's expiry less now is at most that lifetime:
	// an order expiring before the mark plus that (less a margin for
	// clocks and the CA's one-second resolution) was created before the
	// mark. A binary search finds the first order that may be newer, and
	// the search goes on forward from there: the order sought is the
	// first one for the names after the mark. A CA that lists otherwise
	// only makes the search miss: a new order is placed, as without it.
	start := 0
	if len(cands) > 0 {
		newest, ok := get(ctx, cands[len(cands)-1])
		fetched++
		if ok && !newest.Expires.IsZero() {
			older := p.At.Add(newest.Expires.Sub(i.now())).Add(-orderAgeMargin)
			lo, hi := 0, len(cands)-1
			for lo < hi {
				mid := (lo + hi) / 2
				o, ok := get(ctx, cands[mid])
				fetched++
				if ok && !o.Expires.IsZero() && o.Expires.Before(older) {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			start = lo
		}
	}
	if err := ctx.Err(); err != nil {
		return acme.Order{}, false, err
	}
	for from := start; from < len(cands) && from-start < maxPlacedLookups; from += placedParallel {
		batch := cands[from:min(from+placedParallel, len(cands))]
		orders := make([]acme.Order, len(batch))
		_ = parallel(ctx, len(batch), func(ctx context.Context, k int) error {
			orders[k], _ = get(ctx, batch[k])
			return nil
		})
		if err := ctx.Err(); err != nil {
			return acme.Order{}, false, err
		}
		fetched += len(batch)
		for _, o := range orders {
			if (o.Status == acme.StatusPending || o.Status == acme.StatusReady) &&
				o.Expires.After(p.At) && sameIdentifiers(o.Identifiers, req.Spec.Identifiers) {
				lg.Info("found the order of an interrupted placing; continuing it instead of placing another",
					certfleet.LogOrderURL, o.Location, "status", o.Status, "placing_at", p.At,
					"orders_listed", len(urls), "orders_fetched", fetched, "list_took", listed, "took", time.Since(began))
				return o, true, nil
			}
		}
	}
	lg.Info("no order of an interrupted placing found at the CA; placing a new one",
		"placing_at", p.At, "orders_listed", len(urls), "orders_fetched", fetched, "list_took", listed, "took", time.Since(began))
	return acme.Order{}, false, nil
}

// walk is one walk of the account's orders list and the orders fetched
// after it, shared by the lookups that start while it runs or soon after:
// the jobs of a killed instance are taken over together, each with a mark.
type walk struct {
	list  string
	began time.Time
	done  chan struct{} // closed when urls and err are set
	urls  []string
	err   error

	mu     sync.Mutex            // guards orders
	orders map[string]acme.Order // fetched; identifiers and expiry never change
}

func (w *walk) order(url string) (acme.Order, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.orders[url]
	return o, ok
}

func (w *walk) keep(o acme.Order) {
	w.mu.Lock()
	w.orders[o.Location] = o
	w.mu.Unlock()
}

// orderWalk returns a walk of the orders list begun after since: the one
// in progress or done if it began late enough, else a new one.
func (i *Issuer) orderWalk(ctx context.Context, acct acme.Account, list string, since time.Time) (*walk, error) {
	i.walkMu.Lock()
	w := i.walk
	if w != nil && w.list == list && w.began.After(since) {
		i.walkMu.Unlock()
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return w, w.err
	}
	w = &walk{list: list, began: i.now(), done: make(chan struct{}), orders: make(map[string]acme.Order)}
	i.walk = w
	i.walkMu.Unlock()
	w.urls, w.err = i.listOrders(ctx, acct, list)
	close(w.done)
	if w.err != nil {
		i.walkMu.Lock()
		if i.walk == w {
			i.walk = nil // not for the next lookup
		}
		i.walkMu.Unlock()
	}
	return w, w.err
}

// ordersListURL returns the account's "orders" URL, "" when the CA gives
// none. acmez keeps the account object from newAccount only, so it is
// fetched once per account (RFC 8555 §7.3.1 onlyReturnExisting).
func (i *Issuer) ordersListURL(ctx context.Context, acct acme.Account) (string, error) {
	i.ordersMu.Lock()
	if i.ordersOf == acct.Location {
		u := i.ordersURL
		i.ordersMu.Unlock()
		return u, nil
	}
	i.ordersMu.Unlock()
	var got acme.Account
	_, err := i.call(withEndpoint(ctx, EndpointNewAccount), func(ctx context.Context) error {
		var err error
		got, err = i.client.GetAccount(ctx, acct)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("fetch account %s for its orders list: %w", acct.Location, err)
	}
	i.ordersMu.Lock()
	i.ordersOf, i.ordersURL = acct.Location, got.Orders
	i.ordersMu.Unlock()
	return got.Orders, nil
}

// listOrders walks the pages of an orders list (RFC 8555 §7.1.2.1: "the
// server MAY return an incomplete list, along with a Link header field
// with a "next" link relation indicating where further entries can be
// acquired"). acmez has no request for it; the POST-as-GET of GetOrder is
// the same request, and the transport keeps the body it cannot decode.
func (i *Issuer) listOrders(ctx context.Context, acct acme.Account, list string) ([]string, error) {
	var urls []string
	seen := map[string]bool{}
	for page := list; page != "" && len(seen) < maxOrderPages; {
		seen[page] = true
		rec, err := i.call(withEndpoint(ctx, EndpointAccount), func(ctx context.Context) error {
			r, _ := ctx.Value(recorderKey{}).(*recorder)
			r.keep = true
			_, err := i.client.GetOrder(ctx, acct, acme.Order{Location: page})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("orders list %s: %w", page, err)
		}
		rec.mu.Lock()
		body, links, status := rec.body, rec.links, rec.status
		rec.mu.Unlock()
		if status != http.StatusOK {
			return nil, fmt.Errorf("orders list %s: status %d", page, status)
		}
		var doc struct {
			Orders []string `json:"orders"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("orders list %s: %w", page, err)
		}
		urls = append(urls, doc.Orders...)
		page = nextLink(links)
		if seen[page] {
			break
		}
	}
	return urls, nil
}

// nextLink returns the target of the "next" relation among Link header
// field values (RFC 8288 §3), "" if none.
func nextLink(values []string) string {
	for _, v := range values {
		for l := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(l), ";")
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for p := range strings.SplitSeq(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && slices.Contains(strings.Fields(strings.Trim(v, `"`)), "next") {
					return strings.TrimSuffix(strings.TrimPrefix(target, "<"), ">")
				}
			}
		}
	}
	return ""
}
