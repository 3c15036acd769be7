package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Usage prints certfleet's top-level help: the commands (name, summary
// pairs) in two aligned columns, however long a name is.
func Usage(w io.Writer, commands [][2]string) {
	fmt.Fprintf(w, "certfleet — a central ACME certificate manager\n\nUsage:\n  certfleet <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c[0], c[1])
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun \"certfleet <command> --help\" for a command's flags.\nQuickstart: certfleet demo --once\n")
}

// FlagSet is what FlagUsage needs of a *flag.FlagSet (an interface, so
// that this package, which daemon imports, does not import flag: flags
// are cmd's).
type FlagSet interface {
	Output() io.Writer
	SetOutput(io.Writer)
	PrintDefaults()
}

// FlagUsage prints a command's --help: its usage line, its description
// and its flags; a command without flags has no Flags section.
func FlagUsage(w io.Writer, usage, description string, fs FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace(usage), strings.TrimSpace(description))
	var defaults strings.Builder
	out := fs.Output()
	fs.SetOutput(&defaults)
	fs.PrintDefaults()
	fs.SetOutput(out)
	if defaults.Len() > 0 {
		fmt.Fprint(w, "\nFlags:\n"+defaults.String())
	}
}
