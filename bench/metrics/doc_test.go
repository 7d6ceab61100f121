package metrics

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEveryFieldDocumented checks that docs/results.md names every JSON
// field of summary.json and sweep.json (in backquotes).
func TestEveryFieldDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/results.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() || seen[typ] {
			return
		}
		seen[typ] = true
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "`"+name+",") &&
				!strings.Contains(string(doc), ", `"+name+"`") {
				t.Errorf("docs/results.md does not document %s.%s", path, name)
			}
			walk(f.Type, path+"."+name)
		}
	}
	walk(reflect.TypeFor[Summary](), "summary")
	walk(reflect.TypeFor[Sweep](), "sweep")
}
