// The unmodified @supabase/realtime-js against examples/supabase (channel/supabase): subscribe, broadcast with
// self and ack, REST broadcast, presence between three clients, private channels, token expiry and refresh
// (setAuth), reconnect after a server-side disconnect, and two nodes sharing a Redis. Driven by
// examples/supabase/supabase_test.go.
//
// Environment: SUPA_URL (http base of node 1, required), SUPA_URL2 (node 2, optional: the cluster row),
// SUPA_SECRET (the HS256 secret the server verifies with).
import assert from "node:assert/strict"
import {createHmac} from "node:crypto"
import {describe, it} from "node:test"
import {RealtimeClient} from "@supabase/realtime-js"
import {WebSocket} from "ws"

const base = process.env.SUPA_URL
const base2 = process.env.SUPA_URL2
const secret = process.env.SUPA_SECRET
if(!base || !secret){ throw new Error("SUPA_URL and SUPA_SECRET must be set") }
const WAIT = 5000
let seq = 0

const b64 = v => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url")
/** An HS256 JWT, as Supabase's keys and user tokens are. */
function jwt(claims){
  const head = b64({alg: "HS256", typ: "JWT"})
  const body = b64(claims)
  return `${head}.${body}.${createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url")}`
}
const now = () => Math.floor(Date.now() / 1000)

/** Calls register(done) and waits at most ms for done(value); register may return a cleanup, run either way. */
function within(what, ms, register){
  return new Promise((resolve, reject) => {
    let cleanup = null
    const timer = setTimeout(() => { if(cleanup){ cleanup() } reject(new Error(`timed out after ${ms} ms waiting for ${what}`)) }, ms)
    const c = register(v => { clearTimeout(timer); if(cleanup){ cleanup() } resolve(v) })
    cleanup = typeof c === "function" ? c : null
  })
}
const until = (what, ms, pred) => within(what, ms, done => {
  const poll = setInterval(() => { if(pred()){ done() } }, 20)
  return () => clearInterval(poll)
})
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** A realtime-js client with its own API key (subject sub), closed when the test ends. */
function client(t, {url = base, sub = `u${process.pid}-${++seq}`} = {}){
  const apikey = jwt({sub, role: "anon", exp: now() + 3600})
  const c = new RealtimeClient(url.replace(/^http/, "ws") + "/realtime/v1", {
    params: {apikey}, transport: WebSocket, timeout: WAIT, reconnectAfterMs: () => 200,
  })
  c.sub = sub
  c.apikey = apikey
  t.after(() => c.disconnect())
  return c
}

/** Subscribes and resolves once SUBSCRIBED; statuses collects every status the callback saw. */
function subscribe(channel){
  channel.statuses = []
  channel.errors = []
  return within(`SUBSCRIBED on ${channel.topic}`, WAIT, done => {
    channel.subscribe((status, err) => {
      channel.statuses.push(status)
      if(err){ channel.errors.push(err.message) }
      if(status === "SUBSCRIBED"){ done() }
    })
  })
}

function collect(channel, event){
  const got = []
  channel.on("broadcast", {event}, msg => got.push(msg))
  return got
}

const room = () => `room-${process.pid}-${++seq}`

describe("realtime-js against phx", () => {
  it("broadcast reaches others; self and ack as configured", {timeout: 20000}, async t => {
    const name = room()
    const a = client(t).channel(name, {config: {broadcast: {self: false, ack: false}}})
    const b = client(t).channel(name, {config: {broadcast: {self: true, ack: true}}})
    const gotA = collect(a, "msg"), gotB = collect(b, "msg")
    await subscribe(a)
    await subscribe(b)
    assert.equal(await a.send({type: "broadcast", event: "msg", payload: {from: "a"}}), "ok")
    assert.equal(await b.send({type: "broadcast", event: "msg", payload: {from: "b"}}), "ok", "ack: the server replied")
    await until("both messages at b, b's at a", WAIT, () => gotB.length === 2 && gotA.length === 1)
    await sleep(200)
    assert.deepEqual(gotA.map(m => m.payload), [{from: "b"}], "a (self: false) does not get its own")
    assert.deepEqual(gotB.map(m => m.payload).sort((x, y) => x.from.localeCompare(y.from)), [{from: "a"}, {from: "b"}])
    assert.deepEqual(gotA[0], {type: "broadcast", event: "msg", payload: {from: "b"}}, "realtime-js's frame shape")
  })

  it("REST broadcast reaches subscribers", {timeout: 20000}, async t => {
    const name = room()
    const c = client(t)
    const ch = c.channel(name)
    const got = collect(ch, "rest")
    await subscribe(ch)
    const res = await fetch(`${base}/realtime/v1/api/broadcast`, {
      method: "POST", headers: {"content-type": "application/json", apikey: c.apikey},
      body: JSON.stringify({messages: [{topic: name, event: "rest", payload: {n: 1}}, {topic: name, event: "rest", payload: {n: 2}}]}),
    })
    assert.equal(res.status, 202)
    await until("two REST messages", WAIT, () => got.length === 2)
    assert.deepEqual(got.map(m => m.payload), [{n: 1}, {n: 2}])
    const bad = await fetch(`${base}/realtime/v1/api/broadcast`, {method: "POST", headers: {apikey: "nope"}, body: "{}"})
    assert.equal(bad.status, 401)
  })

  it("presence: sync, join and leave between three clients", {timeout: 20000}, async t => {
    const name = room()
    const chans = ["ann", "ben", "cat"].map(key => {
      const ch = client(t).channel(name, {config: {presence: {key}}})
      ch.joins = []
      ch.leaves = []
      ch.on("presence", {event: "join"}, ({key}) => ch.joins.push(key))
      ch.on("presence", {event: "leave"}, ({key}) => ch.leaves.push(key))
      ch.on("presence", {event: "sync"}, () => {})
      return ch
    })
    for(const ch of chans){
      await subscribe(ch)
      assert.equal(await ch.track({since: Date.now()}), "ok")
    }
    for(const ch of chans){
      await until(`three presences at ${ch.topic}`, WAIT, () => Object.keys(ch.presenceState()).length === 3)
      assert.deepEqual(Object.keys(ch.presenceState()).sort(), ["ann", "ben", "cat"])
      assert.ok(ch.presenceState().ann[0].presence_ref, "presence_ref")
    }
    assert.ok(chans[0].joins.includes("cat"), `ann saw cat join: ${chans[0].joins}`)
    assert.equal(await chans[2].untrack(), "ok")
    await until("cat's leave at ann and ben", WAIT, () => chans[0].leaves.includes("cat") && chans[1].leaves.includes("cat"))
    assert.deepEqual(Object.keys(chans[0].presenceState()).sort(), ["ann", "ben"])
  })

  it("private channels: refused without the right role, joined with it", {timeout: 20000}, async t => {
    const refused = client(t)
    await refused.setAuth(jwt({sub: "x", role: "authenticated", exp: now() + 3600}))
    const ch = refused.channel(room(), {config: {private: true}})
    const status = await within("CHANNEL_ERROR", WAIT, done => ch.subscribe((s, err) => { if(s !== "SUBSCRIBED"){ done({s, err}) } }))
    assert.equal(status.s, "CHANNEL_ERROR")
    assert.match(status.err.message, /Unauthorized: You do not have permissions to read from this Channel topic/)
    const admin = client(t)
    await admin.setAuth(jwt({sub: "y", role: "admin", exp: now() + 3600}))
    await subscribe(admin.channel(room(), {config: {private: true}}))
  })

  it("an expired access token closes the channel with a system message", {timeout: 20000}, async t => {
    const c = client(t)
    await c.setAuth(jwt({sub: "z", role: "authenticated", exp: now() + 2}))
    const ch = c.channel(room())
    const system = []
    ch.on("system", {}, m => system.push(m))
    await subscribe(ch)
    await until("the system message and CLOSED", 6000, () => system.length > 0 && ch.statuses.includes("CLOSED"))
    assert.equal(system[0].status, "error")
    assert.equal(system[0].extension, "system")
    assert.match(system[0].message, /Token has expired/)
  })

  it("setAuth before the expiry keeps the channel open", {timeout: 20000}, async t => {
    const c = client(t)
    await c.setAuth(jwt({sub: "w", role: "authenticated", exp: now() + 3}))
    const ch = c.channel(room(), {config: {broadcast: {self: true}}})
    const system = []
    ch.on("system", {}, m => system.push(m))
    const got = collect(ch, "still")
    await subscribe(ch)
    await sleep(1000)
    await c.setAuth(jwt({sub: "w", role: "authenticated", exp: now() + 3600}))
    await sleep(3500)
    assert.deepEqual(system, [], "no system message")
    assert.ok(!ch.statuses.includes("CLOSED"), `statuses ${ch.statuses}`)
    await ch.send({type: "broadcast", event: "still", payload: {open: true}})
    await until("own broadcast after the first token's expiry", WAIT, () => got.length === 1)
  })

  it("reconnects and resubscribes after a server-side disconnect", {timeout: 30000}, async t => {
    const c = client(t)
    const ch = c.channel(room(), {config: {broadcast: {self: true}}})
    const got = collect(ch, "back")
    await subscribe(ch)
    const res = await fetch(`${base}/api/disconnect?sub=${c.sub}`, {method: "POST"})
    assert.equal(res.status, 204)
    await until("a second SUBSCRIBED", 15000, () => ch.statuses.filter(s => s === "SUBSCRIBED").length >= 2)
    await ch.send({type: "broadcast", event: "back", payload: {n: 1}})
    await until("own broadcast after the reconnect", WAIT, () => got.length === 1)
  })

  it("two nodes: broadcast and presence cross them", {timeout: 30000, skip: !base2 && "single node run"}, async t => {
    const name = room()
    const a = client(t).channel(name, {config: {presence: {key: "on-node-1"}}})
    const b = client(t, {url: base2}).channel(name, {config: {presence: {key: "on-node-2"}}})
    const gotA = collect(a, "x"), gotB = collect(b, "x")
    await subscribe(a)
    await subscribe(b)
    await a.track({})
    await b.track({})
    await a.send({type: "broadcast", event: "x", payload: {from: 1}})
    await b.send({type: "broadcast", event: "x", payload: {from: 2}})
    await until("each node's broadcast at the other", 10000, () => gotA.length === 1 && gotB.length === 1)
    assert.deepEqual([gotA[0].payload, gotB[0].payload], [{from: 2}, {from: 1}])
    for(const ch of [a, b]){
      await until(`both presences (${JSON.stringify(ch.presenceState())})`, 10000, () => Object.keys(ch.presenceState()).length === 2)
    }
  })
})
