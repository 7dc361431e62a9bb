// Package protocol encodes and decodes the frames of the Phoenix Channels wire
// protocol.
//
// Every frame carries five logical fields: join_ref, ref, topic, event and
// payload. Two serializers exist, chosen per connection by the vsn query
// parameter: V1 (vsn 1.0.x) sends one JSON object per text frame and never
// sends join_ref; V2 (vsn 2.0.x, the phoenix.js default) sends one JSON array
// [join_ref, ref, topic, event, payload] per text frame and carries raw bytes
// in binary frames whose layout differs by direction and kind.
//
// Refs are opaque JSON values: whatever the client sent (a string, a number or
// null) is echoed back byte for byte, so they are kept as raw JSON.
//
// The package is a leaf: it knows nothing of connections, channels or
// PubSub, and it encodes by hand without reflection because it sits on the
// broadcast hot path.
package protocol
