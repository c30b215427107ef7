package config

// Config is a parsed and validated Enarx.toml.
type Config struct {
	// Steward is the attestation CA URL ("" means a self-signed certificate).
	Steward string
	// StewardCA (extension) is inline PEM trust anchors for the Steward's
	// HTTPS certificate, instead of the built-in Mozilla roots: how a Keep
	// reaches a private or local Steward. It is covered by the Enarx.toml
	// digest in the Keep's certificate.
	StewardCA string
	// Args are appended to argv after argv[0] = "main.wasm".
	Args []string
	// Env holds the workload's environment, in file order. FD_COUNT and
	// FD_NAMES are set by the runtime before these.
	Env []EnvVar
	// Files is the fd table: Files[i] becomes WASI fd i.
	Files []File
	// Warnings are non-fatal findings (e.g. unknown top-level keys, which
	// upstream silently ignores), each naming file, line and key.
	Warnings []string
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name, Value string
}

// Kind is the kind of a [[files]] entry.
type Kind string

const (
	KindNull    Kind = "null"
	KindStdin   Kind = "stdin"
	KindStdout  Kind = "stdout"
	KindStderr  Kind = "stderr"
	KindListen  Kind = "listen"
	KindConnect Kind = "connect"
)

// Prot is the protocol of a listen or connect entry.
type Prot string

const (
	ProtTCP Prot = "tcp"
	ProtTLS Prot = "tls"
)

// File is one [[files]] entry, with defaults applied.
type File struct {
	Kind Kind
	// Name is the entry's name as it appears in FD_NAMES (defaults applied:
	// kind for stdio, "null" for null, host for connect).
	Name string

	// Listen and connect.
	Prot Prot
	Port uint16
	// Listen only: bind address (default "::").
	Addr string
	// Connect only: host name or address to connect to.
	Host string

	// TLS extensions beyond upstream (documented in the README). The
	// parser sets TLS (never nil) exactly when Prot is "tls"; on listen its
	// ClientAuth defaults to "none".
	TLS *TLSOptions
}

// TLSOptions are this project's Enarx.toml extensions for prot = "tls".
// Certificates are given inline as PEM so that they are covered by the
// Enarx.toml digest the Keep reports (a path would name a host file the Keep
// cannot trust).
type TLSOptions struct {
	// ClientAuth (listen): "none" (default, upstream), "steward" (client
	// certificate must chain to the Keep's Steward CA) or "ca" (must chain to
	// ClientCA).
	ClientAuth string
	// ClientCA (listen, client_auth = "ca"): PEM certificates.
	ClientCA string
	// CA (connect): PEM trust anchors used instead of the built-in Mozilla
	// roots (upstream #2170).
	CA string
	// ServerName (connect): the name to verify instead of Host.
	ServerName string
	// ALPN protocols offered (connect) or accepted (listen).
	ALPN []string
}

// Default is the configuration used when no Enarx.toml is given: stdin,
// stdout and stderr as fds 0, 1 and 2.
func Default() *Config {
	return &Config{Files: []File{
		{Kind: KindStdin, Name: "stdin"},
		{Kind: KindStdout, Name: "stdout"},
		{Kind: KindStderr, Name: "stderr"},
	}}
}
