package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// singleDocument parses the first YAML document of data. A file holds one
// document: a later one with content is refused, naming the line where it
// starts, rather than ignored. Later documents without content, as left by
// a trailing "---", carry nothing to ignore and are allowed.
func singleDocument(data []byte, name string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err, nil)
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(name, err, nil)
		}
		if !isEmptyDocument(&next) {
			return nil, &Error{File: name, Line: next.Line,
				Msg: "a second YAML document starts here; a config file holds one document"}
		}
	}
	return &root, nil
}

// isEmptyDocument reports whether n is a document with nothing in it but
// comments: an implicit null, not even "~".
func isEmptyDocument(n *yaml.Node) bool {
	if n.Kind != yaml.DocumentNode || len(n.Content) != 1 {
		return false
	}
	c := n.Content[0]
	return c.Kind == yaml.ScalarNode && c.Tag == "!!null" && c.Value == "" && c.Anchor == ""
}

// document knows, for a parsed file, which field path sits on which line,
// so that every error can say file, line and field.
type document struct {
	name       string
	lineOfPath map[string]int
	pathOfLine map[int]string
}

func newDocument(name string, root *yaml.Node) *document {
	d := &document{name: name, lineOfPath: map[string]int{}, pathOfLine: map[int]string{}}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		d.walk(root.Content[0], "")
	}
	return d
}

func (d *document) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			p := key.Value
			if path != "" {
				p = path + "." + key.Value
			}
			d.record(p, key.Line)
			if key.Value == "api_key" || key.Value == "admin_key" {
				continue // what sits below is a key in the wrong shape: no path names it
			}
			d.walk(value, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.record(p, item.Line)
			d.walk(item, p)
		}
	}
}

func (d *document) record(path string, line int) {
	if _, seen := d.lineOfPath[path]; !seen {
		d.lineOfPath[path] = line
	}
	// The deepest path on a line names it best.
	d.pathOfLine[line] = path
}

// line returns the line of path or of its nearest parent in the file, or 0.
func (d *document) line(path string) int {
	for path != "" {
		if l, ok := d.lineOfPath[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (d *document) errorf(path, format string, args ...any) error {
	return &Error{File: d.name, Line: d.line(path), Field: path, Msg: fmt.Sprintf(format, args...)}
}

// Error is a problem at a place in a config file.
type Error struct {
	File  string
	Line  int // 0 when unknown
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

var (
	yamlLinePattern     = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)
	unknownFieldPattern = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	anchorPattern       = regexp.MustCompile(`(unknown )anchor '.*' referenced`)
	cannotPattern       = regexp.MustCompile("(?s)^cannot unmarshal !!(\\w+)(?: `.*`)? into (\\S+)$")
)

// yamlError rewrites the YAML library's errors as *Error values naming the
// file, line and field. doc is nil for syntax errors.
func yamlError(name string, err error, doc *document) error {
	var messages []string
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		messages = typeErr.Errors
	} else {
		messages = []string{err.Error()}
	}
	var errs []error
	for _, msg := range messages {
		e := &Error{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
		if m := yamlLinePattern.FindStringSubmatch(msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
			if doc != nil {
				e.Field = doc.pathOfLine[e.Line]
			}
		}
		if anchorPattern.MatchString(e.Msg) {
			// The anchor's name may be a key written after a '*'.
			e.Msg = anchorPattern.ReplaceAllString(e.Msg, "${1}anchor referenced")
		}
		if m := unknownFieldPattern.FindStringSubmatch(e.Msg); m != nil {
			if named := doc.fieldOnLine(e.Line, m[1]); named != "" {
				e.Field = named
			} else {
				e.Field = upToField(e.Field, m[1])
			}
			e.Msg = fmt.Sprintf("unknown field %q (see the configuration reference in README.md)", m[1])
		} else if m := cannotPattern.FindStringSubmatch(e.Msg); m != nil {
			// Drop the value itself: it might be a key in the wrong place.
			e.Msg = fmt.Sprintf("expected %s, got %s", goTypeName(m[2]), yamlTagName(m[1]))
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// fieldOnLine returns the path of the field named field that is written
// on line, such as an unknown field among others in a flow mapping
// ({resource: requests, per: minute}); "" if none, or several, are.
func (d *document) fieldOnLine(line int, field string) string {
	if d == nil {
		return ""
	}
	found := ""
	for path, l := range d.lineOfPath {
		if l != line || !strings.HasSuffix(path, "."+field) && path != field {
			continue
		}
		if found != "" {
			return ""
		}
		found = path
	}
	return found
}

// upToField cuts path after its last element named field: the line of an
// unknown field whose value sits on the same line (`modles: [m]`) or below
// it names that value's path, and the error is about the field.
func upToField(path, field string) string {
	for end := len(path); end > 0; {
		i := strings.LastIndex(path[:end], field)
		if i < 0 {
			break
		}
		after := i + len(field)
		if (i == 0 || path[i-1] == '.') && (after == len(path) || path[after] == '.' || path[after] == '[') {
			return path[:after]
		}
		end = i
	}
	return path
}

func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string", t == "config.Secret":
		return "a string"
	default:
		return "a mapping"
	}
}

func yamlTagName(tag string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "str":
		return "a string"
	case "int", "float":
		return "a number"
	case "bool":
		return "true or false"
	default:
		return "!!" + tag
	}
}
