// Package socket is the server end of Phoenix sockets: the http.Handler that
// phoenix.js (and every other Phoenix client) connects to.
//
// # Concepts
//
// A socket is one client connection. When a client connects, the server
// checks the Origin, picks the serializer from the vsn parameter, and asks
// the application's Authenticator to turn the connect parameters (and
// headers, remote address, phoenix.js 1.8's authToken...) into the
// application's own assigns type A. The assigns are immutable: every channel
// of the connection reads them through channel.Context.Assigns, and nothing
// can change them. Keep a small snapshot there (a Player{Username, Rating},
// not the whole database row); fresh, mutable state belongs to a short-lived
// service (package channel/ephemeral).
//
// An optional ID function names the socket ("user_socket:42"). Disconnect
// closes every socket with that id, on every node, as broadcasting
// "disconnect" to it does in Phoenix.
//
// Mount the Server under a path; it serves that path's /websocket and
// /longpoll endpoints, which is what phoenix.js expects:
//
//	srv := socket.New(socket.Config[User]{Authenticator: auth, Router: router})
//	http.Handle("/socket/", srv)
//
// Each connection has one reader goroutine, a writer goroutine only while
// frames are queued, and a bounded outbound queue. Broadcasts are encoded once
// per serializer and the bytes are shared by all subscribers.
package socket
