// Shared helpers for the interop suite (test/*.test.js): the unmodified phoenix.js client (1.7 or 1.8, chosen by
// PHOENIX_PKG) over the `ws` WebSocket against a running examples/conformance server.
//
// Environment:
//   PHX_URL      socket endpoint, e.g. ws://127.0.0.1:4000/socket (required)
//   PHX_HTTP     HTTP base URL, e.g. http://127.0.0.1:4000 (default: derived from PHX_URL)
//   PHOENIX_PKG  phoenix17 or phoenix18 (default phoenix18)
//   PHX_VSN      2.0.0 or 1.0.0 (default 2.0.0)

import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {createRequire} from "node:module"
import {dirname, join} from "node:path"
import {WebSocket} from "ws"

if(!process.env.PHX_URL){ throw new Error("PHX_URL must be set, e.g. ws://127.0.0.1:4000/socket") }

export const env = {
  url: process.env.PHX_URL,
  http: process.env.PHX_HTTP || new URL(process.env.PHX_URL).origin.replace(/^ws/, "http"),
  pkg: process.env.PHOENIX_PKG || "phoenix18",
  vsn: process.env.PHX_VSN || "2.0.0",
}

const require = createRequire(import.meta.url)
const pkgMain = require.resolve(env.pkg)
/** The phoenix.js version under test, read from the installed package. */
export const phoenixVersion = JSON.parse(readFileSync(join(dirname(pkgMain), "../../package.json"), "utf8")).version
const {Socket} = await import(env.pkg)

/** True when the V2 serializer (JSON arrays + binary frames) is in use. */
export const isV2 = env.vsn.startsWith("2.")
/** True for phoenix.js 1.8.x, which has the authToken option. */
export const is18 = phoenixVersion.startsWith("1.8.")

/** The users of the conformance app, by token. */
export const users = {
  alice: {id: 1, username: "alice", rating: 1500},
  bob: {id: 2, username: "bob", rating: 1400},
  carol: {id: 3, username: "carol", rating: 1600},
}

/** Per-test time limit (ms) for node:test. */
export const TEST_TIMEOUT = 15000

// V1 serializer: one JSON object per text frame. phoenix.js's default serializer is V2.
const v1 = {
  encode(msg, callback){
    const {join_ref, ref, topic, event, payload} = msg
    callback(JSON.stringify({join_ref, ref, topic, event, payload}))
  },
  decode(raw, callback){
    const {join_ref, ref, topic, event, payload} = JSON.parse(raw)
    callback({join_ref, ref, topic, event, payload})
  },
}

let topicSeq = 0
/** A topic no other test (or earlier run against the same server) uses. */
export function uniqueTopic(prefix = "room:t"){
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++topicSeq}`
}

function fmt(msg){
  const show = v => (v instanceof ArrayBuffer ? `<binary ${Buffer.from(v).toString("hex")}>` : JSON.stringify(v))
  let payload = msg.payload
  if(payload && payload.response instanceof ArrayBuffer){ payload = {...payload, response: show(payload.response)} }
  return `[${[msg.join_ref, msg.ref, msg.topic, msg.event].map(v => JSON.stringify(v ?? null)).join(",")},${show(payload)}]`
}

/**
 * A phoenix.js Socket plus a transcript of the logical frames it sent and received (used in
 * failure messages). Disconnected automatically when the test ends.
 */
export class Client {
  /** token null connects without a token param; url defaults to PHX_URL. */
  constructor(t, {token = "alice", url = env.url, ...opts} = {}){
    this.name = token ?? "(no token)"
    this.log = []
    this.closes = []
    this.errors = 0
    this.opens = 0
    this.socket = new Socket(url, {
      transport: WebSocket,
      params: token === null ? {} : {token},
      vsn: env.vsn,
      timeout: 3000,
      ...(isV2 ? {} : v1),
      ...opts,
    })
    const encode = this.socket.encode
    this.socket.encode = (msg, callback) => { this.record("->", msg); encode(msg, callback) }
    this.socket.onMessage(msg => this.record("<-", msg))
    this.socket.onOpen(() => { this.opens++; this.record("--", "open") })
    this.socket.onError(() => { this.errors++; this.record("--", "transport error") })
    this.socket.onClose(e => { this.closes.push(e && e.code); this.record("--", `close code=${e && e.code}`) })
    t.after(() => this.disconnect())
    this.socket.connect()
  }

  record(dir, msg){
    this.log.push(`${dir} ${typeof msg === "string" ? msg : fmt(msg)}`)
  }

  /** The frames this client saw, for failure messages. */
  transcript(){
    const lines = this.log.slice(-40)
    return `frames of ${this.name} (${env.pkg} ${phoenixVersion}, vsn ${env.vsn}):\n  ${lines.join("\n  ") || "(none)"}`
  }

  /** Resolves once the socket is open. */
  opened(ms = 3000){
    if(this.socket.isConnected()){ return Promise.resolve() }
    return this.waitFor("socket open", ms, done => {
      const ref = this.socket.onOpen(done)
      return () => this.socket.off([ref])
    })
  }

  /** Resolves with the next close event code. */
  nextClose(ms = 3000){
    return this.waitFor("socket close", ms, done => {
      const ref = this.socket.onClose(e => done(e && e.code))
      return () => this.socket.off([ref])
    })
  }

  /**
   * Calls register(done) and waits at most ms milliseconds for done(value); register may return a
   * cleanup function, called either way. The timeout error carries this client's transcript.
   */
  waitFor(what, ms, register){
    return new Promise((resolve, reject) => {
      let finished = false
      let cleanup = null
      const finish = () => {
        finished = true
        clearTimeout(timer)
        if(cleanup){ cleanup() }
      }
      const timer = setTimeout(() => {
        finish()
        reject(new Error(`${this.name}: timed out after ${ms} ms waiting for ${what}\n${this.transcript()}`))
      }, ms)
      try {
        const c = register(value => {
          if(finished){ return }
          finish()
          resolve(value)
        })
        cleanup = typeof c === "function" ? c : null
        if(finished && cleanup){ cleanup() }
      } catch(e){
        finish()
        reject(e)
      }
    })
  }

  /** Resolves once predicate() is true (polled every 10 ms), failing after ms milliseconds. */
  until(what, ms, predicate){
    return this.waitFor(what, ms, done => {
      const poll = setInterval(() => { if(predicate()){ done() } }, 10)
      return () => clearInterval(poll)
    })
  }

  /** Creates a channel and joins it; resolves with {channel, status, response} of the first join reply. */
  async join(topic, params = {}, ms = 3000){
    const channel = this.socket.channel(topic, params)
    const {status, response} = await this.reply(channel.join(), `join ${topic}`, ms)
    return {channel, status, response}
  }

  /** Joins and asserts the join succeeded; resolves with the channel. */
  async joinOk(topic, params = {}){
    const {channel, status, response} = await this.join(topic, params)
    this.equal({status, response}, {status: "ok", response: userReply(this.name)}, `join ${topic}`)
    return channel
  }

  /** Pushes and resolves with {status, response}; status "timeout" when no reply arrived within ms. */
  push(channel, event, payload = {}, ms = 2000){
    return this.reply(channel.push(event, payload, ms), `reply to ${event} on ${channel.topic}`, ms + 1000)
  }

  reply(push, what, ms){
    return this.waitFor(what, ms, done => {
      for(const status of ["ok", "error", "timeout"]){
        push.receive(status, response => done({status, response}))
      }
    })
  }

  /** Resolves with the payload of the next `event` the channel receives. */
  next(channel, event, ms = 2000){
    return this.waitFor(`"${event}" on ${channel.topic}`, ms, done => {
      const ref = channel.on(event, done)
      return () => channel.off(event, ref)
    })
  }

  /** Collects every payload of `event` on the channel into an array (live). */
  collect(channel, event){
    const got = []
    channel.on(event, payload => got.push(payload))
    return got
  }

  /** deepStrictEqual whose failure message includes this client's transcript. */
  equal(actual, expected, what){
    try {
      assert.deepStrictEqual(actual, expected)
    } catch(e){
      const original = e.message
      e.message = `${this.name}: ${what}\n${original}\n${this.transcript()}`
      if(typeof e.stack === "string"){ e.stack = e.stack.replace(original, e.message) }
      throw e
    }
  }

  /** Disconnects and resolves once the transport is closed. */
  disconnect(){
    return new Promise(resolve => this.socket.disconnect(resolve))
  }
}

/** The join reply the conformance app sends to the given user. */
export function userReply(token){
  const {username, rating} = users[token]
  return {username, rating}
}

/** Connects as token and waits for the socket to open. */
export async function connected(t, token = "alice", opts = {}){
  const client = new Client(t, {token, ...opts})
  await client.opened()
  return client
}

/** Resolves after ms milliseconds. */
export function sleep(ms){
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** POSTs a JSON body to the conformance app's HTTP API; resolves with the Response. */
export function post(path, body){
  return fetch(new URL(path, env.http), {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(3000),
  })
}
