package socket_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/phxgo/phx/socket"
)

// FuzzParseParams decodes arbitrary query strings, which arrive before any
// authentication. ParseParams must not panic, must build only the shapes
// Plug builds (strings, nil, lists of those, nested maps of bounded depth),
// and must let the last of repeated plain keys win, which Authenticators rely
// on (TestLastRepeatedParamWins).
func FuzzParseParams(f *testing.F) {
	f.Add("token=alice&vsn=2.0.0")
	f.Add("token=bad&token=carol&vsn=1.0.0&vsn=2.0.0")
	f.Add("a=1&a=2&user%5Bid%5D=7&user%5Bname%5D=x+y&tags[]=p&tags[]=q&n&e=&arr%5B0%5D=z")
	f.Add("a[b]=1&a=2&a[]=3&a[c][d]=4")
	f.Add("a[]=1&a[x]=2&a[x][]=3&a[x][y]=4")
	f.Add("%zz=1&=2&&a=%&b[=3&c]=4&[d]=5")
	f.Add(strings.Repeat("[x]", 40) + "=deep&k" + strings.Repeat("[x]", 40) + "=v")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		p := socket.ParseParams(rawQuery)
		checkShape(t, map[string]any(p), 0)

		// The reference for plain keys (no well-formed brackets): the last
		// pair naming the key sets it, whatever came before.
		last := map[string]any{}
		for pair := range strings.SplitSeq(rawQuery, "&") {
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
			base, rest, _ := strings.Cut(key, "[")
			if base == "" || rest == "" || !strings.Contains(rest, "]") {
				last[key] = val
			} else {
				delete(last, base) // a nested key replaces an earlier plain one
			}
		}
		for k, want := range last {
			got, ok := p[k]
			if !ok || got != want {
				t.Fatalf("ParseParams(%q)[%q] = %#v (present %v), want %#v", rawQuery, k, got, ok, want)
			}
		}
	})
}

// checkShape fails unless v holds only strings, nil, lists of those, and
// maps of those, no deeper than the nesting ParseParams allows.
func checkShape(t *testing.T, v any, depth int) {
	t.Helper()
	if depth > 40 {
		t.Fatalf("params nested %d deep", depth)
	}
	switch v := v.(type) {
	case nil, string:
	case []any:
		for _, e := range v {
			if _, ok := e.(string); !ok && e != nil {
				t.Fatalf("list element %#v is not a string", e)
			}
		}
	case map[string]any:
		for _, e := range v {
			checkShape(t, e, depth+1)
		}
	default:
		t.Fatalf("unexpected %T in params", v)
	}
}
