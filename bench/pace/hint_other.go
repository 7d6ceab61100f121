//go:build !linux

package pace

import "time"

// hint is inert off Linux: waits keep the runtime's timer precision.
type hint struct{}

func newHint() hint               { return hint{} }
func (hint) arm(time.Duration)    {}
func (hint) armed() time.Duration { return 0 }
func (hint) close()               {}
