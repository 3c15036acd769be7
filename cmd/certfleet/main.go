// Command certfleet is a central ACME certificate manager: it obtains and
// renews TLS certificates for a whole fleet, answers the challenges itself,
// keeps an archive of every certificate, and writes them where they are used.
//
// Run "certfleet help" for the commands. This package only parses flags and
// wires the packages of the module together; the logic lives in those.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
