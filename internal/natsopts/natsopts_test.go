package natsopts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/chatbench/chatbench/internal/natsopts/natsoptstest"
)

func writeFile(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer runs a NATS server in this process with o on a random port.
func startServer(t *testing.T, o *natsserver.Options) string {
	t.Helper()
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", -1, true, true
	ns, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

func TestConnect(t *testing.T) {
	certs := natsoptstest.Generate(t)
	tlsCfg, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := startServer(t, &natsserver.Options{Authorization: "s3cret", TLSConfig: tlsCfg, TLS: true, TLSTimeout: 2})
	userURL := startServer(t, &natsserver.Options{Username: "chat", Password: "pw"})
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	nkeyURL := startServer(t, &natsserver.Options{Nkeys: []*natsserver.NkeyUser{{Nkey: pub}}})
	seedFile := writeFile(t, "user.nk", string(seed))
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := writeFile(t, "other.nk", string(otherSeed))
	tokenFile := writeFile(t, "token", "s3cret\n")
	pwFile := writeFile(t, "pw", "pw")
	for _, tc := range []struct {
		name string
		o    Options
		err  string // "" = connects
	}{
		{"token file and CA", Options{URLs: []string{tlsURL}, TokenFile: tokenFile, CAFile: certs.CA}, ""},
		{"token and CA", Options{URLs: []string{tlsURL}, Token: "s3cret", CAFile: certs.CA}, ""},
		{"no token", Options{URLs: []string{tlsURL}, CAFile: certs.CA}, "authorization"},
		{"wrong token", Options{URLs: []string{tlsURL}, Token: "guess", CAFile: certs.CA}, "authorization"},
		{"wrong CA", Options{URLs: []string{tlsURL}, Token: "s3cret", CAFile: certs.OtherCA}, "certificate"},
		{"no TLS", Options{URLs: []string{tlsURL}, Token: "s3cret"}, "TLS"},
		{"user and password file", Options{URLs: []string{userURL}, User: "chat", PasswordFile: pwFile}, ""},
		{"user and password", Options{URLs: []string{userURL}, User: "chat", Password: "pw"}, ""},
		{"wrong password", Options{URLs: []string{userURL}, User: "chat", Password: "no"}, "authorization"},
		{"nkey seed file", Options{URLs: []string{nkeyURL}, NKeyFile: seedFile}, ""},
		{"another nkey", Options{URLs: []string{nkeyURL}, NKeyFile: otherFile}, "authorization"},
		{"no nkey", Options{URLs: []string{nkeyURL}}, "authorization"},
		{"missing nkey file", Options{URLs: []string{nkeyURL}, NKeyFile: "/nonexistent/user.nk"}, "--nats-nkey"},
		{"missing creds file", Options{URLs: []string{nkeyURL}, CredsFile: "/nonexistent/user.creds"}, "--nats-creds"},
		{"missing token file", Options{URLs: []string{userURL}, TokenFile: "/nonexistent/token"}, "--nats-token-file"},
		{"no URL", Options{}, "no URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := tc.o.Connect()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				defer nc.Close()
				if err := nc.Flush(); err != nil {
					t.Fatalf("flush: %v", err)
				}
				return
			}
			if err == nil {
				nc.Close()
				t.Fatalf("Connect succeeded, want an error containing %q", tc.err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.err)) {
				t.Fatalf("Connect error %q, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		err  string
	}{
		{"zero", Options{}, ""},
		{"two ways", Options{User: "u", Password: "p", NKeyFile: "k"}, "--nats-user and --nats-nkey: give one way"},
		{"user without password", Options{User: "u"}, "--nats-user u without a password"},
		{"password without user", Options{PasswordFile: "f"}, "without --nats-user"},
		{"cert without key", Options{CertFile: "c"}, "--nats-cert and --nats-key go together"},
		{"prefix with wildcard", Options{Prefix: "a.*"}, "--nats-prefix"},
		{"prefix with empty token", Options{Prefix: "a..b"}, "--nats-prefix"},
		{"good prefix", Options{Prefix: "team.chat-a"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := Redact("nats://u:p@h:1,tls://tok@h2:2,nats://h3:3")
	if want := "nats://***@h:1,tls://***@h2:2,nats://h3:3"; got != want {
		t.Fatalf("Redact = %q, want %q", got, want)
	}
}
