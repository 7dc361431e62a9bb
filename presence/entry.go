package presence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// Event names of the pushes and broadcasts phoenix.js's Presence listens to.
const (
	// EventState is the event of the full list pushed to one client.
	EventState = "presence_state"
	// EventDiff is the event of the changes broadcast to a topic.
	EventDiff = "presence_diff"
)

// Entry is what is known of one key in a topic: one meta per tracked channel,
// oldest first, each with its "phx_ref" (and "phx_ref_prev" after an update),
// plus the fields a Fetch hook added. It encodes as
// {"metas": [...], ...Extra}.
type Entry struct {
	Metas []map[string]any
	// Extra holds top-level fields beside "metas" (Phoenix's fetch/2 puts
	// e.g. the user record here). A "metas" field in Extra is ignored.
	Extra map[string]any
}

// MarshalJSON encodes the entry in the shape phoenix.js expects, without
// HTML escaping (as Phoenix's Jason).
func (e Entry) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteString(`{"metas":`)
	metas := e.Metas
	if metas == nil {
		metas = []map[string]any{}
	}
	if err := enc.Encode(metas); err != nil {
		return nil, fmt.Errorf("presence: encode metas: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Extra)) {
		if k == "metas" {
			continue
		}
		buf.WriteByte(',')
		if err := enc.Encode(k); err != nil {
			return nil, fmt.Errorf("presence: encode field %q: %w", k, err)
		}
		buf.WriteByte(':')
		if err := enc.Encode(e.Extra[k]); err != nil {
			return nil, fmt.Errorf("presence: encode field %q: %w", k, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil // the encoder's newlines are insignificant whitespace
}

// UnmarshalJSON decodes {"metas": [...], ...} into Metas and Extra.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("presence: decode entry: %w", err)
	}
	*e = Entry{}
	for k, raw := range fields {
		if k == "metas" {
			if err := json.Unmarshal(raw, &e.Metas); err != nil {
				return fmt.Errorf("presence: decode metas: %w", err)
			}
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("presence: decode field %q: %w", k, err)
		}
		if e.Extra == nil {
			e.Extra = make(map[string]any)
		}
		e.Extra[k] = v
	}
	return nil
}

// Refs returns the phx_ref of each meta, in order.
func (e Entry) Refs() []string {
	refs := make([]string, 0, len(e.Metas))
	for _, m := range e.Metas {
		r, _ := m["phx_ref"].(string)
		refs = append(refs, r)
	}
	return refs
}

// Diff is the payload of a presence_diff broadcast. Both maps are always
// encoded, possibly empty, because phoenix.js reads both.
type Diff struct {
	Joins  map[string]Entry `json:"joins"`
	Leaves map[string]Entry `json:"leaves"`
}

// entries groups elements by key, metas oldest first. Metas are copied so
// that callers and Fetch hooks may modify them.
func entries(es []*element) map[string]Entry {
	sortElements(es)
	out := make(map[string]Entry)
	for _, e := range es {
		en := out[e.key]
		en.Metas = append(en.Metas, e.metaCopy())
		out[e.key] = en
	}
	return out
}

// metaCopy returns the element's meta as a map of the caller's own.
func (e *element) metaCopy() map[string]any {
	if e.meta != nil {
		return maps.Clone(e.meta)
	}
	m, err := decodeMeta(e.raw)
	if err != nil { // merge admits only valid objects
		return map[string]any{}
	}
	return m
}

// appendEntriesJSON appends the elements as {"key":{"metas":[...]},...}
// straight from their encoded metas: without a Fetch hook, state pushes and
// diffs need no map of maps nor a second encoding of every meta.
func appendEntriesJSON(b []byte, es []*element) []byte {
	byKey := make(map[string][]*element)
	for _, e := range es {
		byKey[e.key] = append(byKey[e.key], e)
	}
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(byKey)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, `:{"metas":[`...)
		metas := byKey[k]
		sortElements(metas)
		for j, e := range metas {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, e.raw...)
		}
		b = append(b, "]}"...)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, without HTML escaping.
func appendJSONString(b []byte, s string) []byte {
	simple := utf8.ValidString(s)
	for i := 0; simple && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			simple = false
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSpace(buf.Bytes())...)
}
