package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTopologyFlagErrors: nonsense topology flags are usage errors that
// name the flag and the fix, before anything starts.
func TestServeTopologyFlagErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "servers.json")
	if err := os.WriteFile(file, []byte(`{"gatez": [], "gate": [{"id": "gate", "clientPort": 1}],
		"connector": [{"id": "connector-1", "clientPort": 2}], "chat": [{"id": "chat-1"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		want  []string
		usage bool // exit 2 (errUsage)
	}{
		{[]string{"--topology", "split", "--shards", "0"}, []string{"--shards 0", "at least 1 chat shard", "--shards 1 or more"}, true},
		{[]string{"--topology", "split", "--shards", "-2"}, []string{"--shards -2", "at least 1 chat shard"}, true},
		{[]string{"--topology", "split", "--connectors", "0"}, []string{"--connectors 0", "at least 1 connector", "--connectors 1 or more"}, true},
		{[]string{"--topology", "split", "--connectors", "-1"}, []string{"--connectors -1"}, true},
		{[]string{"--shards", "2"}, []string{"--shards applies only to --topology split", "add --topology split or drop --shards"}, true},
		{[]string{"--topology", "single", "--nats", "nats://127.0.0.1:4222"}, []string{"--nats applies only to --topology split"}, true},
		{[]string{"--topology", "single", "--restart"}, []string{"--restart applies only to --topology split"}, true},
		{[]string{"--topology", "split", "--restart", "--exit-on-child-failure"}, []string{"--restart and --exit-on-child-failure"}, true},
		{[]string{"--topology", "split", "--topology-file", file, "--shards", "3"}, []string{"--shards conflicts with --topology-file " + file}, true},
		{[]string{"--topology", "triple"}, []string{`--topology "triple": use single, split or pomelo`}, true},
		{[]string{"--topology", "pomelo", "--max-rooms", "3", "--restart"}, []string{"--max-rooms, --restart: reference server flags, not for stock pomelo"}, true},
		{[]string{"--topology", "pomelo", "--connectors", "0"}, []string{"--connectors 0: stock pomelo needs at least 1"}, true},
		{[]string{"--topology", "split", "--nats-token-file", "/t"}, []string{"--nats-token-file applies to an external NATS server (--nats URL)", "add --nats or drop --nats-token-file"}, true},
		{[]string{"--topology", "split", "--nats", "nats://127.0.0.1:1", "--nats-user", "u"}, []string{"--nats-user u without a password", "--nats-password-file"}, true},
		{[]string{"--topology", "split", "--nats", "nats://127.0.0.1:1", "--nats-nkey", "k", "--nats-creds", "c"}, []string{"--nats-nkey and --nats-creds: give one way"}, true},
		{[]string{"--topology", "split", "--nats-prefix", "a b"}, []string{`--nats-prefix "a b"`}, true},
		{[]string{"--topology", "single", "--nats-ca", "ca.pem"}, []string{"--nats-ca applies only to --topology split"}, true},
		{[]string{"--role", "chat"}, []string{"--role chat needs --id"}, true},
		{[]string{"--role", "chat", "--id", "chat-1", "--restart"}, []string{"--restart applies to the launcher"}, true},
		{[]string{"--id", "chat-1"}, []string{"--id chat-1 needs --role"}, true},
		{[]string{"--topology", "split", "--topology-file", file}, []string{"topology " + file, `unknown key "gatez"`, "valid keys: nats, subjectPrefix, gate, connector, chat"}, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing may start; if it did, it stops at once
			args := append([]string{"--gate-port", "-1", "--http-port", "-1", "--connector-port", "-1", "--log-level", "error"}, tc.args...)
			err := runServe(ctx, args)
			if err == nil {
				t.Fatalf("serve %v: no error", tc.args)
			}
			if errors.Is(err, errUsage) != tc.usage {
				t.Errorf("serve %v: %v, usage error = %v, want %v", tc.args, err, errors.Is(err, errUsage), tc.usage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("serve %v: error %q does not contain %q", tc.args, err, w)
				}
			}
		})
	}
}
