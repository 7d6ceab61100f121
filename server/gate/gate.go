// Package gate owns the gate server's one route, gate.gateHandler.queryEntry:
// which connector serves a uid, by stock pomelo's dispatch (crc32 of the uid
// over the connectors ordered by id).
package gate

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/room"
)

// Entry is a connector as clients reach it.
type Entry struct {
	ID   string `json:"id"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Handler answers queryEntry. Connectors returns the live connectors; it is
// called per request so a split cluster can change them.
type Handler struct {
	Connectors func() []Entry
}

type queryRequest struct {
	UID any `json:"uid"`
}

// Request implements connector.Handler.
func (h *Handler) Request(_ *connector.Session, route string, body []byte) ([]byte, error) {
	if route != chatproto.RouteQueryEntry {
		return nil, connector.Errorf(chatproto.CodeNoRoute, "unknown route %q at the gate (it serves %s)", route, chatproto.RouteQueryEntry)
	}
	var req queryRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, connector.Errorf(chatproto.CodeBadRequest, "malformed JSON body: %v", err)
	}
	uid := ""
	switch v := req.UID.(type) {
	case string:
		uid = v
	case float64: // pomelo clients may send numeric uids
		uid = fmt.Sprint(v)
	}
	if uid == "" {
		return nil, connector.Errorf(chatproto.CodeFailed, `missing field "uid"`)
	}
	entries := Sorted(h.Connectors())
	if len(entries) == 0 {
		return nil, connector.Errorf(chatproto.CodeFailed, "no connector is up")
	}
	e := entries[room.Dispatch(uid, len(entries))]
	return chatproto.AppendEntry(nil, e.Host, e.Port), nil
}

// Closed implements connector.Handler.
func (h *Handler) Closed(*connector.Session) {}

// Sorted returns the entries ordered by id, the order dispatch indexes.
// Numbers inside ids compare by value, so connector-10 follows connector-9.
func Sorted(entries []Entry) []Entry {
	out := append([]Entry(nil), entries...)
	sort.Slice(out, func(i, j int) bool { return LessID(out[i].ID, out[j].ID) })
	return out
}

// LessID orders server ids naturally: runs of digits compare as numbers.
func LessID(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// ConfigHandler serves /config.json, {"gate":{"host":..,"port":..}}: where the
// chat page finds the gate websocket. advertiseHost, when set, replaces the
// host of gateAddr (host:port).
func ConfigHandler(gateAddr, advertiseHost string) http.Handler {
	host, p, _ := net.SplitHostPort(gateAddr)
	if advertiseHost != "" {
		host = advertiseHost
	}
	port, _ := strconv.Atoi(p)
	body, _ := json.Marshal(map[string]any{"gate": map[string]any{"host": host, "port": port}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}
