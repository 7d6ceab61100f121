// Package chatproto is the vocabulary of the pomelo chat application that
// chatbench serves, drives and calibrates against: its route and push names,
// the codes of its error responses, and the JSON bodies of its requests,
// answers and pushes. The server (server/connector, server/gate,
// server/chat), the driver (bench/client, bench/driver, bench/soak) and the
// bare calibration server (bench/calibrate) take them from here, so they
// cannot drift apart.
//
// JSON strings are quoted in one place, pomelo.AppendJSONString (the codec
// needs it to render protobuf strings): every body here is built on it, and
// Quote gives the same quoting as a string.
package chatproto

import (
	"strconv"

	"github.com/chatbench/chatbench/pomelo"
)

// The request routes of the application. RouteSwitch is not in the stock
// demo; it moves a member to another room in one request.
const (
	RouteQueryEntry = "gate.gateHandler.queryEntry"
	RouteEnter      = "connector.entryHandler.enter"
	RouteSwitch     = "connector.entryHandler.switchRoom"
	RouteSend       = "chat.chatHandler.send"
)

// Routes lists the request routes, in the order of the route dictionary
// every server announces.
func Routes() []string {
	return []string{RouteQueryEntry, RouteEnter, RouteSwitch, RouteSend}
}

// The push routes (strings on the wire: they are not in the dictionary).
const (
	PushAdd   = "onAdd"   // {"route":"onAdd","user":name}: a member joined
	PushLeave = "onLeave" // {"route":"onLeave","user":name}: a member left
	PushChat  = "onChat"  // {"msg":..,"from":..,"target":..}: a chat message
)

// The codes of responses: {"code":CodeOK,...} or
// {"code":N,"error":true,"message":...}.
const (
	CodeOK          = 200
	CodeBadRequest  = 400 // malformed body or missing field
	CodeNotInRoom   = 403 // a chat route before enter
	CodeNoRoute     = 404 // unknown route
	CodeTooLarge    = 413 // content or package too large
	CodeRateLimited = 429 // per-connection request rate exceeded
	CodeFailed      = 500 // as pomelo: duplicate name, unknown target, no connector up
	CodeCapacity    = 503 // max rooms or members reached
	CodeUnavailable = 504 // back-end (chat shard) unavailable or timed out
)

// Quote returns s as a JSON string.
func Quote(s string) string { return string(pomelo.AppendJSONString(nil, s)) }

// AppendQueryEntry appends the queryEntry request {"uid":uid}.
func AppendQueryEntry(dst []byte, uid string) []byte {
	return append(appendField(dst, `{"uid":`, uid), '}')
}

// AppendEnter appends the enter request {"username":username,"rid":rid}.
func AppendEnter(dst []byte, username, rid string) []byte {
	dst = appendField(dst, `{"username":`, username)
	return append(appendField(dst, `,"rid":`, rid), '}')
}

// AppendSwitch appends the switchRoom request {"rid":rid}.
func AppendSwitch(dst []byte, rid string) []byte {
	return append(appendField(dst, `{"rid":`, rid), '}')
}

// AppendSend appends the send request
// {"rid":rid,"content":content,"from":from,"target":target} (target "*": the
// whole room).
func AppendSend(dst []byte, rid, content, from, target string) []byte {
	dst = appendField(dst, `{"rid":`, rid)
	dst = appendField(dst, `,"content":`, content)
	dst = appendField(dst, `,"from":`, from)
	return append(appendField(dst, `,"target":`, target), '}')
}

// AppendError appends the error response {"code":code,"error":true,"message":msg};
// without a message the member is left out.
func AppendError(dst []byte, code int, msg string) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"error":true`...)
	if msg != "" {
		dst = appendField(dst, `,"message":`, msg)
	}
	return append(dst, '}')
}

// AppendEntry appends the queryEntry answer {"code":200,"host":host,"port":port}.
func AppendEntry(dst []byte, host string, port int) []byte {
	dst = appendField(dst, `{"code":200,"host":`, host)
	dst = append(dst, `,"port":`...)
	dst = strconv.AppendInt(dst, int64(port), 10)
	return append(dst, '}')
}

// AppendUsers appends the enter and switchRoom answer {"users":[names...]}.
func AppendUsers(dst []byte, names []string) []byte {
	dst = append(dst, `{"users":[`...)
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = pomelo.AppendJSONString(dst, n)
	}
	return append(dst, "]}"...)
}

// AppendUserPush appends the body of an onAdd or onLeave push,
// {"route":route,"user":name}.
func AppendUserPush(dst []byte, route, name string) []byte {
	dst = appendField(dst, `{"route":`, route)
	return append(appendField(dst, `,"user":`, name), '}')
}

// AppendChatPush appends the body of an onChat push,
// {"msg":content,"from":from,"target":target}. Receivers read msg first
// (the driver's fast path expects the body to start with {"msg":").
func AppendChatPush(dst []byte, content, from, target string) []byte {
	dst = appendField(dst, `{"msg":`, content)
	dst = appendField(dst, `,"from":`, from)
	return append(appendField(dst, `,"target":`, target), '}')
}

// appendField appends key (the punctuation before a member and its quoted
// name, as `,"from":`) and the JSON string of v.
func appendField(dst []byte, key, v string) []byte {
	return pomelo.AppendJSONString(append(dst, key...), v)
}
