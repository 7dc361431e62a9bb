// Package token signs and verifies Phoenix.Token tokens, so that a phx server
// can accept tokens minted by a Phoenix application (and the reverse).
//
// Phoenix.Token is how Phoenix apps usually authenticate sockets: the app
// renders Phoenix.Token.sign(conn, "user socket", user.id) into the page,
// phoenix.js sends it back when it connects, and the socket's connect
// callback checks it with Phoenix.Token.verify. A token is signed, not
// encrypted: it proves that whoever holds the app's secret_key_base produced
// it and when, but anyone can read the data inside.
//
// A token has three dot-separated parts in unpadded base64url: the digest
// name ("SFMyNTY" is HS256), the payload, which is the Erlang External Term
// Format encoding of {data, signed_at_ms, max_age_seconds}, and an HMAC of
// the first two parts. The HMAC key is PBKDF2-HMAC-SHA256 of the endpoint's
// secret_key_base with the salt ("user socket" above), 1000 iterations and
// 32 bytes, which is why a Signer is built once per salt and reused.
//
// # Using it in an Authenticator
//
// Make the Signer when the server starts, with the Phoenix app's
// secret_key_base and the salt it signs with, then verify the token the
// client sends on every connect: either the "token" connect param
// (phoenix.js new Socket(url, {params: {token}})) or, with phoenix.js 1.8,
// the authToken option, which arrives in the Sec-WebSocket-Protocol header
// (or the X-Phoenix-AuthToken header for LongPoll). Either way it is an
// ordinary string by the time the Authenticator sees it.
//
//	signer, err := token.NewSigner(os.Getenv("SECRET_KEY_BASE"), "user socket")
//	...
//	// In the Authenticator, with tok the "token" param or the auth token:
//	userID, err := token.VerifyAs[int](signer, tok)
//	if err != nil {
//		// ErrMissing, ErrExpired or ErrInvalid: refuse the connection, as a
//		// Phoenix connect/3 does by returning :error.
//	}
//
// Verify uses the max age embedded in the token unless WithMaxAge overrides
// it, exactly like Phoenix.Token.verify's :max_age option; Phoenix apps
// usually pass max_age: 86400 or so, and so should a phx server. Never log
// a token: until it expires it is as good as the user's session.
//
// # Data types
//
// Sign and Verify map Erlang terms to Go values as follows:
//
//	Elixir                      Go (Verify returns)       Go (Sign also accepts)
//	integer                     int64, or *big.Int        any integer type, *big.Int
//	float                       float64                   float32
//	binary ("a string")         string                    []byte
//	true, false, nil            true, false, nil
//	other atoms (:infinity)     Atom
//	list ([1, "a"])             []any                     any slice or array
//	charlist ('abc')            []any of int64
//	tuple ({:ok, 1})            Tuple
//	map, all keys binaries      map[string]any            any map
//	map, all keys atoms         map[Atom]any
//	map, other scalar keys      map[any]any
//
// Lists of integers 0 to 255 are charlists to Erlang, so Sign writes them as
// such and Verify returns them as []any of int64 either way. Verify also
// reads compressed terms (term_to_binary(term, [:compressed])) and the
// older payload shapes; it rejects PIDs, references, functions, bitstrings,
// improper lists, maps keyed by lists, tuples or maps, and tokens made with
// Phoenix's :local option, which only the node that signed them can read.
// Whatever the input, Verify does not panic, and it allocates in proportion
// to the token's length (up to 1 MiB for a compressed term).
package token
