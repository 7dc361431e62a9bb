package serve

import (
	"net/http"
	"os"
)

// cdnPhoenixJS is where a page loads phoenix.js from without a local copy.
const cdnPhoenixJS = "https://cdn.jsdelivr.net/npm/phoenix@1.8.16/priv/static/phoenix.min.js"

// localPath is where a page loads a local copy from.
const localPath = "/assets/phoenix.min.js"

// PhoenixJS is the phoenix.js an example page loads: the local file at Path,
// or, for the zero value, the public CDN. The repository holds no copy of
// phoenix.js; a local one comes from an npm install.
type PhoenixJS struct {
	Path string
}

// FindPhoenixJS returns flagPath if set, else the first phoenix.min.js found
// in an npm install (the working directory's, or the interop suites'), else
// the CDN.
func FindPhoenixJS(flagPath string) PhoenixJS {
	if flagPath != "" {
		return PhoenixJS{Path: flagPath}
	}
	for _, p := range []string{
		"node_modules/phoenix/priv/static/phoenix.min.js",
		"examples/conformance/js/node_modules/phoenix18/priv/static/phoenix.min.js",
		"../conformance/js/node_modules/phoenix18/priv/static/phoenix.min.js",
	} {
		if _, err := os.Stat(p); err == nil {
			return PhoenixJS{Path: p}
		}
	}
	return PhoenixJS{}
}

// Src is the script URL for the page.
func (p PhoenixJS) Src() string {
	if p.Path == "" {
		return cdnPhoenixJS
	}
	return localPath
}

// Mount serves the local copy on mux; with the CDN it does nothing.
func (p PhoenixJS) Mount(mux *http.ServeMux) {
	if p.Path == "" {
		return
	}
	mux.HandleFunc("GET "+localPath, func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, p.Path)
	})
}
