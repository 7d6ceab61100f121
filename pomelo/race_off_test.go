//go:build !race

package pomelo

const raceEnabled = false
