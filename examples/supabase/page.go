package main

import _ "embed"

// page is a realtime-js chat: ?key=API_KEY&room=NAME&name=NICK.
//
//go:embed index.html
var page []byte
