package reports

import (
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
)

// Compact formats a number for an axis or a bar label: 950, 12k, 125k,
// 1.2M (three significant digits at most, trailing zeros dropped).
func Compact(x float64) string {
	a := math.Abs(x)
	unit, div := "", 1.0
	switch {
	case a >= 1e9:
		unit, div = "G", 1e9
	case a >= 1e6:
		unit, div = "M", 1e6
	case a >= 1e3:
		unit, div = "k", 1e3
	}
	s := strconv.FormatFloat(x/div, 'g', 3, 64)
	if strings.ContainsAny(s, "e") { // 1e+03 of a value just under a unit
		s = strconv.FormatFloat(x/div, 'f', 0, 64)
	}
	return s + unit
}

// compactTicks labels the default ticks with Compact.
type compactTicks struct{}

func (compactTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = Compact(ticks[i].Value)
		}
	}
	return ticks
}

// msTicks labels a log axis of milliseconds at 1, 2, 5 x 10^k with
// unlabelled minor ticks between them: 0.1 ms ... 1 s rather than 1e+02.
type msTicks struct{}

func (msTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	if min <= 0 {
		min = 1e-3
	}
	for d := math.Pow(10, math.Floor(math.Log10(min))); d <= max*10; d *= 10 {
		for m := 1.0; m < 10; m++ {
			v := m * d
			if v < min*(1-1e-9) || v > max*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = msLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// msLabel writes milliseconds for an axis: 0.5ms, 20ms, 1s, 2s.
func msLabel(ms float64) string {
	if ms >= 1000 {
		return strconv.FormatFloat(ms/1000, 'g', 3, 64) + "s"
	}
	return strconv.FormatFloat(ms, 'g', 3, 64) + "ms"
}

// secondsTicks labels a time axis in seconds at a 1-2-5 step that gives
// about 8 labels (0.5, 1, 1.5 ... or 10, 20, 30 ...), with a minor tick
// between labels.
type secondsTicks struct{}

func (secondsTicks) Ticks(min, max float64) []plot.Tick {
	span := max - min
	if span <= 0 {
		return []plot.Tick{{Value: min, Label: strconv.FormatFloat(min, 'g', 4, 64)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(span/8)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(m*step) <= 9 {
			step *= m
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(min/step) * step; v <= max+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(math.Round(v/step)*step, 'f', -1, 64)})
		if mid := v + step/2; mid <= max {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}
