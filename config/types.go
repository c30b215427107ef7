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
	// KindDir (extension) is a preopened directory: a WASI preopen whose
	// fd is the entry's index, like every other entry's (see DirOptions).
	KindDir Kind = "dir"
)

// Source is where the files of a kind = "dir" entry live.
type Source string

const (
	// SourceMemory is a Keep-private tree in Keep memory, capped at
	// DirOptions.Size and gone when the Keep ends; it never touches the
	// host.
	SourceMemory Source = "memory"
	// SourceHost is a host directory, in plaintext: the host sees and may
	// change everything in it. Untrusted.
	SourceHost Source = "host"
	// SourceSealed is a host directory that holds only ciphertext,
	// encrypted and authenticated inside the Keep with a volume key from
	// DirOptions.Key.
	SourceSealed Source = "sealed"
)

// DefaultDirSize is the size cap of a memory directory without size.
const DefaultDirSize = 64 << 20

// MaxDirSize is the largest size a memory directory may be given.
const MaxDirSize = 1 << 40

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

	// Dir holds a kind = "dir" entry's fields (extension); the parser sets
	// it (never nil) exactly when Kind is KindDir.
	Dir *DirOptions
}

// DirOptions are the fields of a kind = "dir" entry, with defaults
// applied.
type DirOptions struct {
	// GuestPath is the preopen's name as the workload sees it
	// (fd_prestat_dir_name), e.g. "/" or "/data".
	GuestPath string
	// Source says where the files live.
	Source Source
	// HostPath (host, sealed) is the absolute path of the host directory.
	HostPath string
	// ReadOnly refuses every change through the preopen (default false).
	ReadOnly bool
	// Size (memory) caps the bytes the tree holds (default
	// DefaultDirSize).
	Size uint64
	// Key (sealed) names the volume key's source: "file:/abs/path" (a
	// 32-byte key file the host reads and passes: development only) or
	// "snp" (a key derived by the SEV-SNP firmware, bound to the Keep's
	// measurement).
	Key string
	// MinVersion (sealed) is the lowest volume version the Keep accepts:
	// the trusted pin against a host rolling the whole volume back (0:
	// none).
	MinVersion uint64
	// VolumeID (sealed) pins the volume's id: VolumeIDLen lowercase
	// hexadecimal digits, as the Keep logs it ("": none). The Keep
	// refuses a volume of another id, and refuses to create a new volume
	// in an empty directory.
	VolumeID string
}

// KeyFilePrefix starts a Key naming a key file on the host.
const KeyFilePrefix = "file:"

// KeySNP is the Key of a volume key derived by the SEV-SNP firmware.
const KeySNP = "snp"

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
