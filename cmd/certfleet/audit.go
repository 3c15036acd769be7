package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/status"
)

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit", "-config FILE [--certificate NAME] [--kind KIND] [--actor WHO] [--since T] [--until T] [--limit N] [--json]", help("audit")+"\n\nKinds: "+strings.Join(certfleet.EventKinds, ", ")+".", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, "the audit trail of test mode's store ([staging] state), not production's")
	cert := fs.String("certificate", "", "only events about this certificate `name`")
	kind := fs.String("kind", "", "only events of this `kind` (e.g. order_failed, key_read)")
	actor := fs.String("actor", "", "only events by this `actor` (exact, or a prefix ending in ':' such as token:)")
	since := fs.String("since", "", "only events at or after `T` (RFC 3339, a date, or an age such as 24h or 7d)")
	until := fs.String("until", "", "only events before `T` (same forms as --since)")
	limit := fs.Int("limit", certfleet.DefaultEventLimit, fmt.Sprintf("show at most `N` events (1 to %d)", certfleet.MaxEventLimit))
	before := fs.Int64("before-id", 0, "paging: only events listed after the event with this `ID` (the last ID shown)")
	asJSON := fs.Bool("json", false, "print the events as a JSON array instead of a table")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error { return &exitError{code: 2, err: fmt.Errorf(format, a...)} }
	f := certfleet.EventFilter{Certificate: *cert, Kind: *kind, Actor: *actor, BeforeID: *before, Limit: *limit}
	if *limit < 1 || *limit > certfleet.MaxEventLimit {
		return usageErr("--limit %d: give a number from 1 to %d", *limit, certfleet.MaxEventLimit)
	}
	if *before < 0 {
		return usageErr("--before-id %d: give the ID of the last event shown (a positive number)", *before)
	}
	if f.Kind != "" {
		if err := certfleet.ValidateEventKind(f.Kind); err != nil {
			return usageErr("--kind: %v", err)
		}
		if !slices.Contains(certfleet.EventKinds, f.Kind) {
			fmt.Fprintf(stderr, "certfleet audit: note: certfleet records no events of kind %q that it knows of (known: %s)\n", f.Kind, strings.Join(certfleet.EventKinds, ", "))
		}
	}
	if f.Actor != "" && !strings.Contains(f.Actor, ":") {
		return usageErr("--actor %q: give TYPE:NAME (token:tok_…, cli:root, agent:lb1, instance:…, config:FILE) or a prefix such as token:", f.Actor)
	}
	now := time.Now()
	for _, tv := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--since", *since, &f.Since}, {"--until", *until, &f.Until}} {
		if tv.v == "" {
			continue
		}
		t, err := certfleet.ParseEventTime(tv.v, now)
		if err != nil {
			return usageErr("%s: %v", tv.flag, err)
		}
		*tv.dst = t
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return usageErr("--until (%s) must be after --since (%s)", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}

	cfg, store, err := openQuiet(ctx, *cfgPath, *testMode)
	if err != nil {
		return err
	}
	defer store.Close()
	evs, err := store.Events(ctx, f)
	if err != nil {
		if certfleet.ErrorCode(err) == certfleet.EINVALID {
			return &exitError{code: 2, err: err}
		}
		return fmt.Errorf("read the audit trail of %s: %w", daemon.RedactDSN(cfg.State), err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(status.ShownEvents(evs), "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else if err := status.Events(stdout, evs); err != nil {
		return err
	}
	if len(evs) == f.Limit {
		fmt.Fprintf(stderr, "certfleet audit: %d events shown; older ones: add --before-id %d\n", len(evs), evs[len(evs)-1].ID)
	}
	return nil
}
