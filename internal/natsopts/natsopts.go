// Package natsopts is how a chatbench process reaches NATS: the URLs, one
// way to authenticate (user and password, token, nkey seed file or creds
// file), TLS with a CA file (and optionally a client certificate), and the
// subject prefix under which a cluster's subjects sit (so two clusters can
// share one NATS deployment).
//
// Secrets never need the command line, where ps shows them: a token or a
// password comes from a file (TokenFile, PasswordFile) or from the
// environment (EnvToken, EnvPassword); nkey and creds are files anyway. The
// split launcher hands the token of its embedded NATS server to its children
// in EnvToken.
//
// The server side (server/cluster) and the driver workers (bench/workers)
// both use it, so a worker connects to NATS exactly as the split topology
// does.
package natsopts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
)

// Environment variables read by FromEnv.
const (
	EnvToken    = "CHATBENCH_NATS_TOKEN"
	EnvPassword = "CHATBENCH_NATS_PASSWORD"
)

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "chatbench"

// Options say how to connect to NATS. The zero value connects without
// credentials and without TLS, under subject prefix DefaultPrefix.
type Options struct {
	URLs []string // nats://host:port or tls://host:port; may embed user:pass@ or token@ (visible in ps)

	User         string // user name; the password comes from Password, PasswordFile or EnvPassword
	Password     string // never from a flag: see PasswordFile and FromEnv
	PasswordFile string
	Token        string // never from a flag: see TokenFile and FromEnv
	TokenFile    string
	NKeyFile     string // an nkey seed file (SU...)
	CredsFile    string // a creds file (user JWT and nkey seed)

	// TLS: CAFile is the CA that signed the server's certificate (default:
	// the system roots). CertFile and KeyFile are a client certificate for
	// servers that verify clients. TLS forces TLS without any of them (a
	// tls:// URL does too).
	TLS      bool
	CAFile   string
	CertFile string
	KeyFile  string

	Prefix string // subject prefix; "" means DefaultPrefix
}

// SubjectPrefix is the prefix in effect.
func (o *Options) SubjectPrefix() string {
	if o.Prefix == "" {
		return DefaultPrefix
	}
	return o.Prefix
}

// AddFlags registers the credential, TLS and prefix flags of o on fs:
// --nats-user, --nats-password-file, --nats-token-file, --nats-nkey,
// --nats-creds, --nats-tls, --nats-ca, --nats-cert, --nats-key,
// --nats-prefix (FlagNames). The command registers its own --nats for the
// URLs, whose meaning differs between commands.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.User, "nats-user", "", "NATS user name; the password comes from --nats-password-file or $"+EnvPassword)
	fs.StringVar(&o.PasswordFile, "nats-password-file", "", "file holding the NATS password (with --nats-user)")
	fs.StringVar(&o.TokenFile, "nats-token-file", "", "file holding the NATS token (or set $"+EnvToken+")")
	fs.StringVar(&o.NKeyFile, "nats-nkey", "", "NATS nkey seed file")
	fs.StringVar(&o.CredsFile, "nats-creds", "", "NATS creds file (user JWT and nkey seed)")
	fs.BoolVar(&o.TLS, "nats-tls", false, "connect to NATS with TLS (implied by --nats-ca, --nats-cert and tls:// URLs)")
	fs.StringVar(&o.CAFile, "nats-ca", "", "CA certificate (PEM) that signed the NATS server's certificate")
	fs.StringVar(&o.CertFile, "nats-cert", "", "client certificate (PEM) for NATS servers that verify clients (with --nats-key)")
	fs.StringVar(&o.KeyFile, "nats-key", "", "client certificate key (PEM) (with --nats-cert)")
	fs.StringVar(&o.Prefix, "nats-prefix", "", "NATS subject prefix, so several clusters can share one NATS (default \""+DefaultPrefix+"\")")
}

// FlagNames are the flags AddFlags registers: a launcher forwards them to
// its children (they carry file names and names, never secrets).
var FlagNames = []string{"nats-user", "nats-password-file", "nats-token-file", "nats-nkey", "nats-creds",
	"nats-tls", "nats-ca", "nats-cert", "nats-key", "nats-prefix"}

// FromEnv fills Token from EnvToken when neither Token nor TokenFile is
// set, and Password from EnvPassword when User is set without a password.
func (o *Options) FromEnv() {
	if o.Token == "" && o.TokenFile == "" {
		o.Token = os.Getenv(EnvToken)
	}
	if o.User != "" && o.Password == "" && o.PasswordFile == "" {
		o.Password = os.Getenv(EnvPassword)
	}
}

// Validate checks that at most one way to authenticate is given, that
// files come in their pairs, and that the prefix is a valid subject token
// sequence. Its errors name the flags of AddFlags.
func (o *Options) Validate() error {
	var ways []string
	if o.User != "" {
		ways = append(ways, "--nats-user")
	}
	if o.Token != "" || o.TokenFile != "" {
		ways = append(ways, "a token (--nats-token-file or $"+EnvToken+")")
	}
	if o.NKeyFile != "" {
		ways = append(ways, "--nats-nkey")
	}
	if o.CredsFile != "" {
		ways = append(ways, "--nats-creds")
	}
	switch {
	case len(ways) > 1:
		return fmt.Errorf("NATS: %s: give one way to authenticate", strings.Join(ways, " and "))
	case o.User == "" && (o.PasswordFile != "" || o.Password != ""):
		return errors.New("NATS: a password without --nats-user: add --nats-user NAME")
	case o.User != "" && o.Password == "" && o.PasswordFile == "":
		return fmt.Errorf("NATS: --nats-user %s without a password: give --nats-password-file FILE or set $%s", o.User, EnvPassword)
	case (o.CertFile == "") != (o.KeyFile == ""):
		return errors.New("NATS: --nats-cert and --nats-key go together: give both or neither")
	}
	if o.Prefix != "" {
		for _, tok := range strings.Split(o.Prefix, ".") {
			if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
				return fmt.Errorf("NATS: --nats-prefix %q: use dot-separated words without spaces, '*' or '>' (e.g. cluster-a or team.chat)", o.Prefix)
			}
		}
	}
	return nil
}

// NATSOptions returns the nats.go options for o's credentials and TLS,
// reading the files it names. The URLs are not among them (see Connect).
func (o *Options) NATSOptions() ([]nats.Option, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var out []nats.Option
	read := func(flag, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("NATS: %s: %w", flag, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("NATS: %s %s is empty", flag, path)
		}
		return s, nil
	}
	switch {
	case o.User != "":
		pw := o.Password
		if o.PasswordFile != "" {
			var err error
			if pw, err = read("--nats-password-file", o.PasswordFile); err != nil {
				return nil, err
			}
		}
		out = append(out, nats.UserInfo(o.User, pw))
	case o.Token != "" || o.TokenFile != "":
		tok := o.Token
		if o.TokenFile != "" {
			var err error
			if tok, err = read("--nats-token-file", o.TokenFile); err != nil {
				return nil, err
			}
		}
		out = append(out, nats.Token(tok))
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("NATS: --nats-nkey %s: %w", o.NKeyFile, err)
		}
		out = append(out, opt)
	case o.CredsFile != "":
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, fmt.Errorf("NATS: --nats-creds: %w", err)
		}
		out = append(out, nats.UserCredentials(o.CredsFile))
	}
	if o.TLS || o.CAFile != "" || o.CertFile != "" {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		out = append(out, nats.Secure(cfg))
	}
	return out, nil
}

func (o *Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("NATS: --nats-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("NATS: --nats-ca %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("NATS: --nats-cert %s / --nats-key %s: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Connect dials o.URLs with o's credentials and TLS, then extra options
// (name, reconnect policy, handlers).
func (o *Options) Connect(extra ...nats.Option) (*nats.Conn, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("NATS: no URL: give --nats nats://host:port")
	}
	opts, err := o.NATSOptions()
	if err != nil {
		return nil, err
	}
	urls := strings.Join(o.URLs, ",")
	nc, err := nats.Connect(urls, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", Redact(urls), err)
	}
	return nc, nil
}

// Redact replaces the user info of NATS URLs (a,b,...) with "***", for logs
// and errors.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, rest, ok := strings.Cut(u, "://")
		if !ok {
			continue
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			parts[i] = scheme + "://***@" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}
