package scenario

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/chatbench/chatbench/scenarios"
	"go.yaml.in/yaml/v3"
)

// Defaults applied by Parse to fields a file leaves out.
const (
	DefaultSeed    = 1
	DefaultPayload = 64
	DefaultZipfS   = 1.0
	MaxPayload     = 65536
)

// Names lists the shipped scenarios (embedded in the binary), sorted.
func Names() []string {
	entries, err := fs.ReadDir(scenarios.FS, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// IsPath reports whether Load treats nameOrPath as a file path rather than
// the name of a shipped scenario: it contains a path separator or ends in
// .yaml or .yml.
func IsPath(nameOrPath string) bool {
	return strings.ContainsAny(nameOrPath, `/\`) || strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml")
}

// Load loads a shipped scenario by name ("chat") or a file by path
// ("my.yaml", "./x/y.yaml"; see IsPath), and validates it. Errors name
// file:line and the field.
func Load(nameOrPath string) (*Scenario, error) {
	if IsPath(nameOrPath) {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		return Parse(nameOrPath, data)
	}
	data, err := fs.ReadFile(scenarios.FS, nameOrPath+".yaml")
	if err != nil {
		return nil, fmt.Errorf("scenario: unknown scenario %q (shipped: %s; or give the path of a .yaml file)",
			nameOrPath, strings.Join(Names(), ", "))
	}
	return Parse("scenarios/"+nameOrPath+".yaml", data)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates one scenario document; source names it in
// errors (a file path).
func Parse(source string, data []byte) (*Scenario, error) {
	p := &problems{file: source, lines: map[string]int{"": 1}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			l, _ := strconv.Atoi(m[1])
			p.at(l, "", "%s", m[2])
		} else {
			p.at(1, "", "%s", strings.TrimPrefix(msg, "yaml: "))
		}
		return nil, p.err()
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.at(1, "", "empty scenario (want a mapping with %s)", strings.Join(topFields, ", "))
		return nil, p.err()
	}
	root := doc.Content[0]
	s := &Scenario{Source: source}
	d := decoder{p: p}
	d.top(root, s)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	s.defaults()
	s.validate(p)
	if len(p.errs) > 0 {
		return nil, p.err()
	}
	return s, nil
}

func (s *Scenario) defaults() {
	if s.Name == "" {
		base := path.Base(strings.ReplaceAll(s.Source, `\`, "/"))
		s.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	if s.Seed == 0 {
		s.Seed = DefaultSeed
	}
	if s.Payload == 0 {
		s.Payload = DefaultPayload
	}
	if s.Rooms.Spread == "" {
		s.Rooms.Spread = SpreadUniform
	}
	if s.Rooms.Spread == SpreadZipf && s.Rooms.ZipfS == 0 {
		s.Rooms.ZipfS = DefaultZipfS
	}
	for i := range s.Phases {
		ph := &s.Phases[i]
		if ph.Name == "" {
			ph.Name = string(ph.Kind)
		}
		if ph.Kind == KindLeave && ph.Share == 0 {
			ph.Share = 1
		}
	}
}
