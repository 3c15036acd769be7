package endpoint

// Finding is one check of the endpoint of a certificate (of one key family
// of a dual certificate): the Verdict of Compare, or the error that kept
// the check from reaching one.
type Finding struct {
	// Certificate names the certificate whose endpoint was checked.
	Certificate string
	Target      Target
	Verdict     Verdict
	// Err is set when the check itself failed (refused, timed out,
	// STARTTLS refused...); Verdict is then zero.
	Err error
}

// OK reports whether the endpoint serves the current certificate, in time.
func (f Finding) OK() bool { return f.Err == nil && f.Verdict.OK() }

// Summary is one line for people: the error, or the verdict's message.
func (f Finding) Summary() string {
	if f.Err != nil {
		return f.Err.Error()
	}
	return f.Verdict.Message
}
