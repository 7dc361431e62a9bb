// Browser interop: the unmodified phoenix.js browser bundle (priv/static/phoenix.min.js of phoenix 1.7 or 1.8, chosen by
// PHOENIX_PKG) in headless Chromium, driven by playwright-core, against a running examples/conformance server. One page
// uses the LongPoll transport, another the default WebSocket; a third starts on a blocked WebSocket and must fall back
// to LongPoll. The pages are served by a small static server on another port, so every LongPoll request is cross-origin
// (CORS preflight included: phoenix.js posts application/x-ndjson).
//
// Not under test/, so the Node-level suite does not run it; examples/conformance/browser_test.go runs it.
//
// Environment:
//   PHX_URL      socket endpoint, e.g. ws://127.0.0.1:4000/socket (required)
//   PHX_HTTP     HTTP base URL, e.g. http://127.0.0.1:4000 (default: derived from PHX_URL)
//   PHOENIX_PKG  phoenix17 or phoenix18 (default phoenix18)
//   CHROMIUM     Chromium executable (default /usr/bin/chromium)

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {createServer} from "node:http"
import {createRequire} from "node:module"
import {dirname, join} from "node:path"
import {after, before, test} from "node:test"
import {chromium} from "playwright-core"

if(!process.env.PHX_URL){ throw new Error("PHX_URL must be set, e.g. ws://127.0.0.1:4000/socket") }
const env = {
  url: process.env.PHX_URL,
  http: process.env.PHX_HTTP || new URL(process.env.PHX_URL).origin.replace(/^ws/, "http"),
  pkg: process.env.PHOENIX_PKG || "phoenix18",
  chromium: process.env.CHROMIUM || "/usr/bin/chromium",
}

const require = createRequire(import.meta.url)
const staticDir = dirname(require.resolve(env.pkg)) // .../node_modules/phoenixNN/priv/static
const bundle = readFileSync(join(staticDir, "phoenix.min.js"))
// The recovery snippet as an app pastes it: a plain script, not a module.
const snippet = readFileSync(new URL("../lib/recovery.mjs", import.meta.url), "utf8").replace(/^export /m, "")
const phoenixVersion = JSON.parse(readFileSync(join(staticDir, "../../package.json"), "utf8")).version

/** Per-test time limit (ms); generous because the machine is small and shared. */
const TEST_TIMEOUT = 60000
/** Time limit (ms) for one awaited condition inside a page. */
const WAIT = 10000

// The page: phoenix.js's browser bundle (global Phoenix) plus a small driver, window.phx, that page.evaluate calls.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>phx browser interop</title>
<script src="/phoenix.min.js"></script>
<script src="/recovery.js"></script>
<script>
window.phx = {
  log: [], shouts: [], pushed: [], posts: [], replies: [], joins: 0, opens: 0, users: null, socket: null, channel: null,
  note(line){ this.log.push(line); if(this.log.length > 80){ this.log.shift() } },
  // Connects a socket and joins topic; resolves with the join reply (rejects with the error reply or "timeout").
  // feed: join through the recovery snippet (docs/recovery.md) and record each post's n.
  start({url, token, topic, longpoll, fallbackMs, feed}){
    const opts = {
      params: {token},
      timeout: 5000,
      reconnectAfterMs: () => 200,
      rejoinAfterMs: () => 200,
      logger: (kind, msg, data) => this.note(kind + ": " + msg + " " + (data === undefined ? "" : JSON.stringify(data))),
    }
    if(longpoll){ opts.transport = Phoenix.LongPoll }
    if(fallbackMs){ opts.longPollFallbackMs = fallbackMs }
    const socket = this.socket = new Phoenix.Socket(url, opts)
    socket.onOpen(() => { this.opens++; this.note("-- open (" + this.transport() + ")") })
    socket.onClose(e => this.note("-- close code=" + (e && e.code)))
    socket.onError(e => this.note("-- error " + (e && (e.message || e.type || e))))
    socket.connect()
    const channel = this.channel = feed ? recoverableChannel(socket, topic) : socket.channel(topic, {})
    channel.on("post", p => this.posts.push(p.n))
    channel.on("shout", p => this.shouts.push(p))
    channel.on("pushed", p => this.pushed.push(p))
    const presence = new Phoenix.Presence(channel)
    presence.onSync(() => { this.users = presence.list(id => id).sort() })
    return new Promise((resolve, reject) => {
      channel.join()
        .receive("ok", r => { this.joins++; this.replies.push(r); resolve(r) })
        .receive("error", r => reject(new Error("join error " + JSON.stringify(r))))
        .receive("timeout", () => reject(new Error("join timeout")))
    })
  },
  // Pushes event and resolves with {status, response}.
  push(event, payload){
    return new Promise(resolve => {
      this.channel.push(event, payload, 5000)
        .receive("ok", response => resolve({status: "ok", response}))
        .receive("error", response => resolve({status: "error", response}))
        .receive("timeout", () => resolve({status: "timeout"}))
    })
  },
  transport(){
    const t = this.socket && this.socket.transport
    if(t === Phoenix.LongPoll){ return "LongPoll" }
    if(t === window.WebSocket){ return "WebSocket" }
    return String(t && t.name)
  },
}
</script></head><body>phx</body></html>`

let browser, staticServer, pageURL

before(async () => {
  staticServer = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname
    if(path === "/"){
      res.writeHead(200, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"})
      res.end(PAGE)
    } else if(path === "/phoenix.min.js"){
      res.writeHead(200, {"content-type": "text/javascript; charset=utf-8", "cache-control": "no-store"})
      res.end(bundle)
    } else if(path === "/recovery.js"){
      res.writeHead(200, {"content-type": "text/javascript; charset=utf-8", "cache-control": "no-store"})
      res.end(snippet)
    } else if(path === "/favicon.ico"){
      res.writeHead(204)
      res.end()
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  await new Promise((resolve, reject) => {
    staticServer.once("error", reject)
    staticServer.listen(0, "127.0.0.1", resolve)
  })
  pageURL = `http://127.0.0.1:${staticServer.address().port}/`
  // launch() gives Chromium a fresh temporary --user-data-dir of its own (and refuses one in args) and removes it on
  // close. The networking flags keep Chromium from dialing out (this sandbox refuses such connections).
  browser = await chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 30000,
  })
})

after(async () => {
  if(browser){ await browser.close() }
  if(staticServer){ await new Promise(resolve => staticServer.close(resolve)) }
})

let topicSeq = 0
function uniqueTopic(){
  return `room:browser-${process.pid}-${Date.now().toString(36)}-${++topicSeq}`
}

/**
 * A page in a fresh browser context (closed when the test ends), connected as token and joined to topic. Resolves
 * with {page, join, ...}; page log lines (console, page errors, failed requests) are kept for failure messages.
 */
async function openClient(t, {token, topic, longpoll = false, fallbackMs = 0, feed = false, setup = null}){
  const context = await browser.newContext()
  t.after(() => context.close())
  const page = await context.newPage()
  const name = `${token}/${longpoll ? "LongPoll" : fallbackMs ? "fallback" : "WebSocket"}`
  const client = {page, name, pageLog: []}
  page.on("console", m => client.pageLog.push(`console.${m.type()}: ${m.text()}`))
  page.on("pageerror", e => client.pageLog.push(`pageerror: ${e.message}`))
  page.on("requestfailed", r => client.pageLog.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`))
  if(setup){ await setup(page, context) }
  await page.goto(pageURL)
  try {
    let timer
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no join reply within ${WAIT} ms`)), WAIT)
    })
    const joined = page.evaluate(a => window.phx.start(a), {url: env.url, token, topic, longpoll, fallbackMs, feed})
    joined.catch(() => {}) // may settle after the timeout
    client.join = await Promise.race([joined, timeout]).finally(() => clearTimeout(timer))
  } catch(e){
    throw new Error(`${name}: join of ${topic} failed: ${e.message}\n${await transcript(client)}`)
  }
  return client
}

/** The page's phoenix.js log and browser events, for failure messages. */
async function transcript(client){
  let log = []
  try { log = await client.page.evaluate(() => window.phx.log) } catch(e){ log = [`(page log unavailable: ${e.message})`] }
  return `--- ${client.name} (${env.pkg} ${phoenixVersion}) phoenix.js log:\n  ${log.join("\n  ") || "(none)"}` +
    `\n--- browser events:\n  ${client.pageLog.slice(-30).join("\n  ") || "(none)"}`
}

/** Waits until fn(arg) is truthy in the client's page; the timeout error carries the transcript. */
async function until(client, what, fn, arg, wait = WAIT){
  try {
    await client.page.waitForFunction(fn, arg, {timeout: wait, polling: 50})
  } catch(e){
    const state = await client.page.evaluate(() => ({
      transport: window.phx.transport(), connected: window.phx.socket?.isConnected(), joins: window.phx.joins,
      shouts: window.phx.shouts, pushed: window.phx.pushed, users: window.phx.users,
    })).catch(err => `(unavailable: ${err.message})`)
    throw new Error(`${client.name}: timed out after ${wait} ms waiting for ${what}\nstate: ${JSON.stringify(state)}\n` +
      await transcript(client))
  }
}

async function push(client, event, payload){
  return client.page.evaluate(([e, p]) => window.phx.push(e, p), [event, payload])
}

/** Pushes without waiting for a reply (shout has none). */
async function cast(client, event, payload){
  return client.page.evaluate(([e, p]) => { window.phx.channel.push(e, p) }, [event, payload])
}

async function transportOf(client){
  return client.page.evaluate(() => window.phx.transport())
}

/** Alice over LongPoll and Bob over WebSocket, joined to one fresh room. */
async function pair(t){
  const topic = uniqueTopic()
  const alice = await openClient(t, {token: "alice", topic, longpoll: true})
  const bob = await openClient(t, {token: "bob", topic})
  return {topic, alice, bob}
}

test(`${env.pkg} ${phoenixVersion}: LongPoll and WebSocket pages join one room`, {timeout: TEST_TIMEOUT}, async t => {
  const {alice, bob} = await pair(t)
  assert.deepEqual(alice.join, {username: "alice", rating: 1500})
  assert.deepEqual(bob.join, {username: "bob", rating: 1400})
  assert.equal(await transportOf(alice), "LongPoll")
  assert.equal(await transportOf(bob), "WebSocket")
})

test(`${env.pkg} ${phoenixVersion}: shout crosses transports both ways`, {timeout: TEST_TIMEOUT}, async t => {
  const {alice, bob} = await pair(t)
  await cast(alice, "shout", {body: "from-longpoll"})
  await cast(bob, "shout", {body: "from-websocket"})
  const want = [{body: "from-longpoll", from: "alice"}, {body: "from-websocket", from: "bob"}]
  for(const c of [alice, bob]){
    await until(c, "both shouts", () => window.phx.shouts.length >= 2)
    const got = await c.page.evaluate(() => window.phx.shouts)
    assert.deepEqual([...got].sort((a, b) => a.body.localeCompare(b.body)), want, `${c.name} shouts`)
  }
})

test(`${env.pkg} ${phoenixVersion}: echo and push_me over LongPoll`, {timeout: TEST_TIMEOUT}, async t => {
  const alice = await openClient(t, {token: "alice", topic: uniqueTopic(), longpoll: true})
  assert.deepEqual(await push(alice, "echo", {n: 1, s: "é✓", list: [1, 2]}), {status: "ok", response: {n: 1, s: "é✓", list: [1, 2]}})
  assert.deepEqual(await push(alice, "echo_error", {why: "x"}), {status: "error", response: {why: "x"}})
  assert.deepEqual(await push(alice, "push_me", {k: "v"}), {status: "ok", response: {}})
  await until(alice, "pushed", () => window.phx.pushed.length >= 1)
  assert.deepEqual(await alice.page.evaluate(() => window.phx.pushed), [{k: "v"}])
})

test(`${env.pkg} ${phoenixVersion}: presence lists both users on both transports`, {timeout: TEST_TIMEOUT}, async t => {
  const {alice, bob} = await pair(t)
  for(const c of [alice, bob]){
    await until(c, "presence list [alice, bob]", () => JSON.stringify(window.phx.users) === '["alice","bob"]')
  }
})

// Issue 12.1: after a server-side disconnect, a LongPoll page that keeps using its channel comes back (reconnects,
// rejoins, receives again) without a reload, on 1.7 as on 1.8. 1.7 recovers only because the server answers like
// Phoenix: the held poll runs out its window (204) and a POST with the ended session's token gets 410 (after 2 s),
// which makes 1.7 close and reconnect; an early 410 on the poll would make it adopt a new session silently.
test(`${env.pkg} ${phoenixVersion}: LongPoll page that keeps shouting rejoins and receives again after /api/disconnect`, {timeout: TEST_TIMEOUT}, async t => {
  const alice = await openClient(t, {token: "alice", topic: uniqueTopic(), longpoll: true})
  await alice.page.evaluate(() => {
    window.phx.sent = 0
    window.phx.shouter = setInterval(() => window.phx.channel.push("shout", {n: ++window.phx.sent}), 300)
  })
  await until(alice, "its own shouts", () => window.phx.shouts.length >= 2)
  const res = await fetch(`${env.http}/api/disconnect?id=1`, {method: "POST"})
  assert.equal(res.status, 204, "POST /api/disconnect?id=1 status")
  const started = Date.now()
  await until(alice, "a rejoin after the disconnect", () => window.phx.joins >= 2 && window.phx.channel.state === "joined",
    undefined, 20000)
  const rejoinedMs = Date.now() - started
  const seen = await alice.page.evaluate(() => window.phx.shouts.length)
  await until(alice, "shouts received after the rejoin", n => window.phx.shouts.length >= n + 3, seen)
  await alice.page.evaluate(() => clearInterval(window.phx.shouter))
  assert.equal(await transportOf(alice), "LongPoll")
  assert.deepEqual(await push(alice, "echo", {after: true}), {status: "ok", response: {after: true}})
  assert.ok(rejoinedMs < 20000, `rejoined after ${rejoinedMs} ms`)
  t.diagnostic(`rejoined ${rejoinedMs} ms after the disconnect`)
})

test(`${env.pkg} ${phoenixVersion}: blocked WebSocket falls back to LongPoll`, {timeout: TEST_TIMEOUT}, async t => {
  let wsAttempts = 0
  const carol = await openClient(t, {
    token: "carol", topic: uniqueTopic(), fallbackMs: 500,
    // The WebSocket never reaches the server: playwright accepts the handshake itself and swallows every frame (a
    // proxy that breaks WebSockets), so the join and the health-check ping go unanswered and phoenix.js must fall
    // back after longPollFallbackMs. (Closing the mock instead, ws.close(), gives a clean close with no error event;
    // phoenix.js then just reconnects every reconnectAfterMs, each attempt restarting the fallback timer, so with
    // this page's 200 ms reconnect it never falls back. context.route() does not see WebSocket handshakes.)
    setup: page => page.routeWebSocket(/\/socket\/websocket/, () => { wsAttempts++ }),
  })
  assert.ok(wsAttempts >= 1, "the page never tried the WebSocket (route not hit)")
  assert.equal(await transportOf(carol), "LongPoll", `transport after fallback\n${await transcript(carol)}`)
  assert.equal(await carol.page.evaluate(() => window.phx.socket.isConnected()), true)
  assert.deepEqual(await push(carol, "echo", {fallback: 1}), {status: "ok", response: {fallback: 1}})
  assert.deepEqual(await push(carol, "whoami", {}), {status: "ok", response: {id: 3, username: "carol", rating: 1600}})
})

/** POSTs to the app's HTTP API; asserts 204. */
async function api(path, body = {}){
  const res = await fetch(new URL(path, env.http), {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
  })
  assert.equal(res.status, 204, `POST ${path}: ${res.status} ${await res.text()}`)
}

for(const longpoll of [false, true]){
  const name = longpoll ? "LongPoll" : "WebSocket"
  test(`${env.pkg} ${phoenixVersion}: recovery over ${name}: 1,000 broadcasts across two server-side disconnects arrive complete, in order, once`, {timeout: TEST_TIMEOUT}, async t => {
    const topic = `feed:browser-${process.pid}-${Date.now().toString(36)}-${++topicSeq}`
    const alice = await openClient(t, {token: "alice", topic, longpoll, feed: true})
    // A LongPoll client learns that the server ended its session from its next POST (see the test above): the page
    // keeps pushing, as an app does.
    await alice.page.evaluate(() => { window.phx.pinger = setInterval(() => window.phx.channel.push("ping", {}), 300) })
    t.after(() => alice.page.evaluate(() => clearInterval(window.phx.pinger)).catch(() => {}))
    const publish = async (from, to) => {
      for(let n = from; n <= to; n++){ await api(`/api/broadcast?topic=${encodeURIComponent(topic)}&event=post`, {n}) }
    }
    await publish(1, 300)
    await api("/api/disconnect?id=1")
    await publish(301, 400)
    await until(alice, "the first rejoin", () => window.phx.joins >= 2 && window.phx.channel.state === "joined", undefined, 20000)
    await publish(401, 650)
    await api("/api/disconnect?id=1")
    await publish(651, 1000)
    await until(alice, "1,000 posts", () => window.phx.posts.length >= 1000, undefined, 20000)
    await until(alice, "the second rejoin", () => window.phx.joins >= 3, undefined, 20000)
    const {posts, replies} = await alice.page.evaluate(() => ({posts: window.phx.posts, replies: window.phx.replies}))
    assert.deepEqual(posts, Array.from({length: 1000}, (_, i) => i + 1), `posts in order, once each\n${await transcript(alice)}`)
    assert.equal(replies[0].recovered, false, "the first join")
    assert.deepEqual(replies.slice(1).map(r => r.recovered), replies.slice(1).map(() => true), "every rejoin recovered")
  })
}
