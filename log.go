package certfleet

// Attribute keys for log/slog, kept in one place so logs stay greppable.
const (
	LogCertificate = "certificate" // spec name
	LogKeyType     = "key_type"
	LogIdentifiers = "identifiers"
	LogOrderURL    = "order_url"
	LogChallenge   = "challenge"
	LogIdentifier  = "identifier"
	LogSerial      = "serial"
	LogNotAfter    = "not_after"
	LogNextAt      = "next_at"
	LogAttempt     = "attempt"
	LogInstance    = "instance"
	LogCA          = "ca"
	LogPath        = "path"
	LogCommand     = "command"
	LogError       = "error"
	LogSource      = "source" // an inventory source's name
)
