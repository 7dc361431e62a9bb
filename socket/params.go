package socket

import (
	"net/url"
	"strings"
)

// Params are the connect parameters, decoded from the query string the way
// Phoenix (Plug) decodes them: the last of repeated keys wins, "a[b]=v" builds
// nested maps, "a[]=v" builds lists, and every leaf is a string (a key without
// "=" has a nil value). phoenix.js sends its params option this way.
type Params map[string]any

// Get returns the string value of key, or "" if it is absent or not a string.
func (p Params) Get(key string) string {
	s, _ := p[key].(string)
	return s
}

// Lookup returns the string value of key and whether it is a string.
func (p Params) Lookup(key string) (string, bool) {
	s, ok := p[key].(string)
	return s, ok
}

const maxParamDepth = 32

// ParseParams decodes a raw query string into Params.
func ParseParams(rawQuery string) Params {
	p := Params{}
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawVal, hasVal := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil || key == "" {
			continue
		}
		var val any
		if hasVal {
			v, err := url.QueryUnescape(rawVal)
			if err != nil {
				continue
			}
			val = v
		}
		assign(p, key, val)
	}
	return p
}

// assign stores val under a possibly bracketed key such as "user[name]".
func assign(root map[string]any, key string, val any) {
	base, rest, _ := strings.Cut(key, "[")
	if base == "" || rest == "" || !strings.Contains(rest, "]") {
		root[key] = val
		return
	}
	parts := []string{}
	rest = "[" + rest
	for len(rest) > 0 && rest[0] == '[' && len(parts) < maxParamDepth {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		parts = append(parts, rest[1:end])
		rest = rest[end+1:]
	}
	cur := root
	name := base
	for i, part := range parts {
		last := i == len(parts)-1
		if part == "" {
			// "a[]=v": append to a list; a list ends the nesting here.
			list, _ := cur[name].([]any)
			cur[name] = append(list, val)
			return
		}
		next, ok := cur[name].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[name] = next
		}
		cur, name = next, part
		if last {
			cur[name] = val
		}
	}
}
