package scenario

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks the yaml.Node tree.
type decoder struct{ p *problems }

var (
	topFields       = []string{"name", "description", "seed", "clients", "rooms", "payload", "phases", "thresholds", "serve_flags"}
	roomFields      = []string{"count", "spread", "zipf_s"}
	thresholdFields = []string{"p99_delivery_max", "loss_max", "error_rate_max", "min_deliveries_per_s"}
	phaseFields     = []string{"name", "kind", "duration", "arrival_rate", "concurrency", "rate", "private_share",
		"payload", "burst", "burst_every", "hop_rate", "hop_share", "share"}
	// kindFields lists the fields each phase kind accepts.
	kindFields = map[Kind][]string{
		KindEnter: {"name", "kind", "duration", "arrival_rate", "concurrency"},
		KindChat:  {"name", "kind", "duration", "rate", "private_share", "payload"},
		KindStorm: {"name", "kind", "duration", "burst", "burst_every", "private_share", "payload"},
		KindLeave: {"name", "kind", "duration", "arrival_rate", "concurrency", "share"},
		KindHop:   {"name", "kind", "duration", "rate", "private_share", "payload", "hop_rate", "hop_share"},
		KindIdle:  {"name", "kind", "duration"},
	}
)

func kindNames() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// fields checks that n is a mapping of known, unique keys and calls f for
// each key in file order.
func (d *decoder) fields(n *yaml.Node, at string, valid []string, f func(key string, v *yaml.Node, path string)) {
	if n.Kind != yaml.MappingNode {
		d.p.at(n.Line, at, "must be a mapping with fields %s, got %s", strings.Join(valid, ", "), describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fp := join(at, k.Value)
		if !contains(valid, k.Value) {
			d.p.at(k.Line, fp, "unknown field (valid: %s)", strings.Join(valid, ", "))
			continue
		}
		if seen[k.Value] {
			d.p.at(k.Line, fp, "duplicate field")
			continue
		}
		seen[k.Value] = true
		d.p.lines[fp] = k.Line
		f(k.Value, v, fp)
	}
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) top(n *yaml.Node, s *Scenario) {
	d.p.lines[""] = n.Line
	d.fields(n, "", topFields, func(key string, v *yaml.Node, fp string) {
		switch key {
		case "name":
			s.Name = d.str(v, fp)
		case "description":
			s.Description = d.str(v, fp)
		case "seed":
			s.Seed = int64(d.int(v, fp))
		case "clients":
			s.Clients = d.int(v, fp)
		case "payload":
			s.Payload = d.int(v, fp)
		case "rooms":
			d.fields(v, fp, roomFields, func(key string, v *yaml.Node, fp string) {
				switch key {
				case "count":
					s.Rooms.Count = d.int(v, fp)
				case "spread":
					s.Rooms.Spread = Spread(d.str(v, fp))
				case "zipf_s":
					s.Rooms.ZipfS = d.float(v, fp)
				}
			})
		case "phases":
			if v.Kind != yaml.SequenceNode {
				d.p.at(v.Line, fp, "must be a list of phases, got %s", describe(v))
				return
			}
			for i, pn := range v.Content {
				s.Phases = append(s.Phases, d.phase(pn, fmt.Sprintf("phases[%d]", i)))
			}
		case "thresholds":
			d.thresholds(v, fp, &s.Thresholds)
		case "serve_flags":
			if v.Kind != yaml.SequenceNode {
				d.p.at(v.Line, fp, "must be a list of serve flags with their values, e.g. [--heartbeat=15s], got %s", describe(v))
				return
			}
			for i, fn := range v.Content {
				ip := fmt.Sprintf("%s[%d]", fp, i)
				f := d.str(fn, ip)
				if name, _, ok := strings.Cut(f, "="); !ok || !strings.HasPrefix(name, "--") || len(name) < 3 {
					d.p.at(fn.Line, ip, "%q: give a serve flag with its value, e.g. --heartbeat=15s", f)
					continue
				}
				s.ServeFlags = append(s.ServeFlags, f)
			}
		}
	})
}

// thresholds decodes either a list of expressions ("delivery.p99 < 50ms")
// or a mapping of the named thresholds (p99_delivery_max: 25ms, ...) and,
// k6's way, metrics with their expressions (delivery: [p99 < 50ms]).
func (d *decoder) thresholds(v *yaml.Node, fp string, t *Thresholds) {
	if v.Kind == yaml.SequenceNode {
		for i, n := range v.Content {
			if e, ok := d.expr(n, fmt.Sprintf("%s[%d]", fp, i), ""); ok {
				t.Exprs = append(t.Exprs, e)
			}
		}
		return
	}
	if v.Kind != yaml.MappingNode {
		d.p.at(v.Line, fp, "must be a list of expressions (- delivery.p99 < 50ms) or a mapping (p99_delivery_max: 25ms, delivery: [p99 < 50ms]), got %s", describe(v))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, n := v.Content[i], v.Content[i+1]
		kp := join(fp, k.Value)
		if seen[k.Value] {
			d.p.at(k.Line, kp, "duplicate field")
			continue
		}
		seen[k.Value] = true
		d.p.lines[kp] = k.Line
		switch k.Value {
		case "p99_delivery_max":
			x := d.duration(n, kp)
			t.P99DeliveryMax = &x
		case "loss_max":
			x := d.float(n, kp)
			t.LossMax = &x
		case "error_rate_max":
			x := d.float(n, kp)
			t.ErrorRateMax = &x
		case "min_deliveries_per_s":
			x := d.float(n, kp)
			t.MinDeliveriesPerSec = &x
		default:
			items := []*yaml.Node{n}
			if n.Kind == yaml.SequenceNode {
				items = n.Content
			}
			for j, it := range items {
				if e, ok := d.expr(it, fmt.Sprintf("%s[%d]", kp, j), k.Value); ok {
					t.Exprs = append(t.Exprs, e)
				}
			}
		}
	}
}

// expr decodes one expression; metric, when set, is the mapping key it is
// listed under (k6's form: the expression starts with an aggregation, or
// with the comparison for a plain counter or rate).
func (d *decoder) expr(n *yaml.Node, fp, metric string) (Expr, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.p.at(n.Line, fp, "must be a threshold expression like \"delivery.p99 < 50ms\" (named thresholds: %s), got %s",
			strings.Join(thresholdFields, ", "), describe(n))
		return Expr{}, false
	}
	text := strings.TrimSpace(n.Value)
	if metric != "" {
		if strings.ContainsAny(text[:min(1, len(text))], "<>=!") {
			text = metric + " " + text
		} else {
			text = metric + "." + text
		}
	}
	e, err := ParseExpr(text)
	if err != nil {
		if metric != "" && !slices.Contains(ThresholdOps, metric) && !isMetric(metric) {
			d.p.at(n.Line, fp, "unknown threshold %q: use a named threshold (%s) or a metric: %v", metric, strings.Join(thresholdFields, ", "), err)
			return Expr{}, false
		}
		d.p.at(n.Line, fp, "%v", err)
		return Expr{}, false
	}
	e.Line = n.Line
	return e, true
}

func (d *decoder) phase(n *yaml.Node, at string) Phase {
	var ph Phase
	d.p.lines[at] = n.Line
	if n.Kind != yaml.MappingNode {
		d.p.at(n.Line, at, "must be a mapping with fields %s, got %s", strings.Join(phaseFields, ", "), describe(n))
		return ph
	}
	// The kind decides which fields are valid: find it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			v := n.Content[i+1]
			k := Kind(d.str(v, at+".kind"))
			if _, ok := kindFields[k]; !ok {
				d.p.at(v.Line, at+".kind", "must be one of %s, got %s", kindNames(), describe(v))
				return ph
			}
			ph.Kind = k
		}
	}
	if ph.Kind == "" {
		d.p.at(n.Line, at+".kind", "missing (one of %s)", kindNames())
		return ph
	}
	valid := kindFields[ph.Kind]
	d.fields(n, at, phaseFields, func(key string, v *yaml.Node, fp string) {
		if !contains(valid, key) {
			d.p.at(v.Line, fp, "not used by kind %s (%s uses: %s)", ph.Kind, ph.Kind, strings.Join(valid, ", "))
			return
		}
		switch key {
		case "name":
			ph.Name = d.str(v, fp)
		case "duration":
			ph.Duration = d.duration(v, fp)
		case "arrival_rate":
			ph.ArrivalRate = d.float(v, fp)
		case "concurrency":
			ph.Concurrency = d.int(v, fp)
		case "rate":
			ph.Rate = d.float(v, fp)
		case "private_share":
			ph.PrivateShare = d.float(v, fp)
		case "payload":
			ph.Payload = d.int(v, fp)
		case "burst":
			ph.Burst = d.int(v, fp)
		case "burst_every":
			ph.BurstEvery = d.duration(v, fp)
		case "hop_rate":
			ph.HopRate = d.float(v, fp)
		case "hop_share":
			ph.HopShare = d.float(v, fp)
		case "share":
			ph.Share = d.float(v, fp)
		}
	})
	return ph
}

func (d *decoder) scalar(v *yaml.Node, fp, want string) bool {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		d.p.at(v.Line, fp, "must be %s, got %s", want, describe(v))
		return false
	}
	return true
}

func (d *decoder) str(v *yaml.Node, fp string) string {
	if !d.scalar(v, fp, "a string") {
		return ""
	}
	return v.Value
}

func (d *decoder) int(v *yaml.Node, fp string) int {
	if !d.scalar(v, fp, "an integer") {
		return 0
	}
	var x int
	if v.Tag != "!!int" || v.Decode(&x) != nil {
		d.p.at(v.Line, fp, "must be an integer, got %s", describe(v))
		return 0
	}
	return x
}

func (d *decoder) float(v *yaml.Node, fp string) float64 {
	if !d.scalar(v, fp, "a number") {
		return 0
	}
	var x float64
	if (v.Tag != "!!int" && v.Tag != "!!float") || v.Decode(&x) != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		d.p.at(v.Line, fp, "must be a number, got %s", describe(v))
		return 0
	}
	return x
}

func (d *decoder) duration(v *yaml.Node, fp string) time.Duration {
	if !d.scalar(v, fp, "a duration like 10s") {
		return 0
	}
	if v.Value == "0" {
		return 0
	}
	x, err := time.ParseDuration(v.Value)
	if err != nil {
		d.p.at(v.Line, fp, "must be a duration like 10s or 250ms, got %s", describe(v))
		return 0
	}
	return x
}
