// Package scenarios holds the shipped scenario files, embedded in the binary.
// Package bench/scenario loads them by name (the file name without .yaml).
package scenarios

import "embed"

// FS holds every shipped *.yaml scenario at its top level.
//
//go:embed *.yaml
var FS embed.FS
