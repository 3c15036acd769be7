package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/identity"
)

// NewAuthority returns the host identities' Authority (issue 17) of a
// config's [identities] over a store, recording to events (nil: none).
// It is an error only when the operator's client CA file cannot be read;
// a store that keeps no identities is EINVALID.
func NewAuthority(cfg *config.Config, st certfleet.Store, events certfleet.EventSink) (*identity.Authority, error) {
	is, ok := st.(certfleet.IdentityStore)
	if !ok {
		return nil, certfleet.Errorf(certfleet.EINVALID, "the %T store keeps no host identities", st)
	}
	a := &identity.Authority{Store: is, Events: events, Lifetime: cfg.Identities.Lifetime}
	if f := cfg.Identities.ClientCAFile; f != "" {
		pool, err := config.LoadClientCAs(f)
		if err != nil {
			return nil, fmt.Errorf("[identities] client_ca_file: %w", err)
		}
		a.ClientCAs = pool
		for _, s := range cfg.Identities.Subjects {
			a.Subjects = append(a.Subjects, identity.Subject{Subject: s.Subject, Names: s.Names, Permissions: s.Permissions, Tenant: s.Tenant})
		}
	}
	return a, nil
}

// startIdentities gives the API its host identities (issue 17): the
// Authority is kept fresh until the daemon closes and, when the API serves
// TLS (tlsConf set), every handshake asks for a client certificate and
// checks it. A store without identities leaves the API without them.
func (d *Daemon) startIdentities(srv *httpapi.Server, tlsConf *tls.Config) error {
	a, err := NewAuthority(d.Config, d.Store, &d.events)
	if certfleet.ErrorCode(err) == certfleet.EINVALID {
		d.Logger.Warn("host identities off", certfleet.LogError, err)
		return nil
	} else if err != nil {
		return err
	}
	a.Logger = d.Logger.With("component", "identities")
	srv.Identities = a
	srv.RequireClientCertForKeys = d.Config.Identities.RequireClientCertForKeys
	if tlsConf != nil {
		a.ConfigureTLS(tlsConf)
	}
	d.serve("host identities", func() error { a.Run(d.serveCtx); return nil })
	return nil
}

// EnrollToken makes an enrollment token for the operator running this
// process (certfleet identity enroll-token) and prints it and how to use
// it: the secret on out (it is shown this once), the rest on info.
func EnrollToken(ctx context.Context, cfg *config.Config, st certfleet.Store, req identity.EnrollRequest, out, info io.Writer) error {
	a, err := NewAuthority(cfg, st, st)
	if err != nil {
		return err
	}
	req.Actor, req.Remote = Operator(), Host()
	tok, secret, err := a.CreateEnrollToken(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(info, "enrollment token %s for %s, single use, valid until %s; it is shown only now.\n"+
		"On the host: certfleet agent -config agent.toml --enroll-token TOKEN (the agent makes its key there).\n",
		tok.ID, strings.Join(tok.Names, ","), tok.ExpiresAt.UTC().Format(time.RFC3339))
	fmt.Fprintln(out, secret)
	return nil
}

// ListIdentities prints the host identities and the enrollment tokens.
func ListIdentities(ctx context.Context, st certfleet.Store, out io.Writer) error {
	is, ok := st.(certfleet.IdentityStore)
	if !ok {
		return certfleet.Errorf(certfleet.EINVALID, "the %T store keeps no host identities", st)
	}
	return identity.WriteList(ctx, is, out, time.Now())
}

// RevokeIdentity revokes a host identity at once, on every instance, and
// records it.
func RevokeIdentity(ctx context.Context, cfg *config.Config, st certfleet.Store, id string) error {
	a, err := NewAuthority(cfg, st, st)
	if err != nil {
		return err
	}
	_, err = a.Revoke(ctx, id, Operator(), Host())
	return err
}
