// Loaded for its effect before phoenix.js: phoenix.js 1.8's LongPoll uses fetch when there is no XMLHttpRequest
// (Node 20 has fetch), but 1.7 only knows XMLHttpRequest, and its bundle captures its global object at load time
// (`self` or `window`, else an undefined `global`, since its own variable shadows Node's). For 1.7 this module
// installs a `self` global and a minimal fetch-backed XMLHttpRequest. Import it before phoenix.js is loaded; each
// test file runs in its own process under node --test, so nothing leaks into the WebSocket suites.
import {readFileSync} from "node:fs"
import {createRequire} from "node:module"
import {dirname, join} from "node:path"

const pkgName = process.env.PHOENIX_PKG || "phoenix18"
const pkgMain = createRequire(import.meta.url).resolve(pkgName)
const legacy = JSON.parse(readFileSync(join(dirname(pkgMain), "../../package.json"), "utf8")).version.startsWith("1.7.")
if(legacy){
  if(typeof globalThis.self === "undefined"){ globalThis.self = globalThis }
  if(typeof globalThis.XMLHttpRequest === "undefined"){ globalThis.XMLHttpRequest = fetchXHR() }
}

/**
 * A minimal XMLHttpRequest on fetch, just what phoenix.js 1.7's Ajax.xhrRequest uses: open, setRequestHeader,
 * timeout, send, abort, readyState/responseText/onreadystatechange, onerror, ontimeout.
 */
function fetchXHR(){
  return class FetchXHR {
    constructor(){
      this.readyState = 0
      this.status = 0
      this.responseText = ""
      this.timeout = 0
      this.headers = {}
      this.controller = new AbortController()
    }
    open(method, url){ this.method = method; this.url = url; this.readyState = 1 }
    setRequestHeader(key, value){ this.headers[key] = value }
    abort(){ this.aborted = true; this.controller.abort() }
    send(body){
      const timer = this.timeout ? setTimeout(() => { this.timedOut = true; this.controller.abort() }, this.timeout) : null
      fetch(this.url, {method: this.method, headers: this.headers, body: body ?? undefined, signal: this.controller.signal})
        .then(async resp => {
          this.status = resp.status
          this.responseText = await resp.text()
          clearTimeout(timer)
          this.readyState = 4
          if(this.onreadystatechange){ this.onreadystatechange() }
        })
        .catch(() => {
          clearTimeout(timer)
          if(this.aborted){ return }
          if(this.timedOut){ this.ontimeout && this.ontimeout() } else { this.onerror && this.onerror() }
        })
    }
  }
}
