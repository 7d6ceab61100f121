package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chatbench/chatbench/chatproto"
)

// Errors reported to request callbacks and close handlers.
var (
	ErrClosed           = errors.New("client: connection closed")
	ErrTimeout          = errors.New("client: request timed out")
	ErrHeartbeatTimeout = errors.New("client: server silent past the heartbeat timeout")
	ErrKicked           = errors.New("client: kicked by the server")
	// ErrSendStalled fails a client whose server stopped reading its socket:
	// its send backlog took no byte for Options.WriteTimeout, or grew past
	// Options.SendBacklog.
	ErrSendStalled = errors.New("client: send stalled, the server stopped reading")
)

// HandshakeError is a server handshake answered with a code other than 200.
type HandshakeError struct{ Code int }

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("client: handshake refused with code %d", e.Code)
}

// StepError says whether a dial failed at "connect" or "handshake".
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// ResponseError is a pomelo error response: {"code":N,"error":true,...} or a
// code other than 200.
type ResponseError struct {
	Route   string
	Code    int
	Message string
}

func (e *ResponseError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: code %d: %s", e.Route, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: code %d", e.Route, e.Code)
}

// ParseError returns a *ResponseError when body is an error response.
func ParseError(route string, body []byte) error {
	code, ok := ResponseCode(body)
	if !ok || code == chatproto.CodeOK {
		return nil
	}
	var r struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &r)
	return &ResponseError{Route: route, Code: code, Message: r.Message}
}
