//go:build !linux

package connector

func inq(uintptr) int { return 0 }
