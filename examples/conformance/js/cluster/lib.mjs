// Helpers for the cluster suite (cluster/*.test.mjs): unmodified phoenix.js clients (1.7 or 1.8, chosen by
// PHOENIX_PKG) connected to different nodes of a cluster of conformance servers sharing a broker, started by
// examples/conformance/cluster_test.go.
//
// Environment (set by cluster_test.go):
//   PHX_NODES        comma-separated socket endpoints, one per node (ws://127.0.0.1:P/socket)
//   PHX_NODES_HTTP   comma-separated HTTP base URLs, same order
//   PHX_LB           socket endpoint of a round-robin proxy in front of every node (no sticky sessions)
//   PHX_CONTROL      base URL of the test's control endpoint: POST /broker/kill, /broker/start, /broker/flush (a restart
//                    that loses the broker's data),
//                    /node/kill?i=N, /node/start?i=N; GET and DELETE /lb (LongPoll requests per node)
//   PHX_PRESENCE_DOWN_MS, PHX_PRESENCE_BROADCAST_MS   the nodes' presence down and heartbeat periods
//   PHOENIX_PKG      phoenix17 or phoenix18 (default phoenix18)
//
// A test file that needs phoenix.js 1.7's LongPoll under Node must install its globals before importing this
// module (see longpoll.test.mjs).
import assert from "node:assert/strict"
import {WebSocket} from "ws"

for(const name of ["PHX_NODES", "PHX_NODES_HTTP", "PHX_LB", "PHX_CONTROL"]){
  if(!process.env[name]){ throw new Error(`${name} must be set: run these tests through go test -run TestCluster`) }
}

export const env = {
  nodes: process.env.PHX_NODES.split(","),
  http: process.env.PHX_NODES_HTTP.split(","),
  lb: process.env.PHX_LB,
  control: process.env.PHX_CONTROL,
  pkg: process.env.PHOENIX_PKG || "phoenix18",
  downMs: Number(process.env.PHX_PRESENCE_DOWN_MS || 4000),
  broadcastMs: Number(process.env.PHX_PRESENCE_BROADCAST_MS || 1500),
}

export const phoenix = await import(env.pkg)
const {Socket, Presence} = phoenix

/** Per-test time limit (ms) for node:test. */
export const TEST_TIMEOUT = 45000

/** How long a change made on one node may take to show on another: a heartbeat period plus slack. */
export const REPLICATION_MS = env.broadcastMs * 2 + 2000

let topicSeq = 0
/** A topic no other test uses. */
export function uniqueTopic(prefix = "room:c"){
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++topicSeq}`
}

/** Resolves after ms milliseconds. */
export function sleep(ms){
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls predicate every 10 ms until it holds; rejects after ms with what and detail() in the message. */
export async function until(what, ms, predicate, detail = () => ""){
  const deadline = Date.now() + ms
  while(!predicate()){
    if(Date.now() > deadline){ throw new Error(`timed out after ${ms} ms waiting for ${what}\n${detail()}`) }
    await sleep(10)
  }
}

/** POSTs to node i's HTTP API; asserts 204. */
export async function api(i, path, body = {}){
  const res = await fetch(new URL(path, env.http[i]), {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  })
  assert.equal(res.status, 204, `POST ${path} on node ${i}: ${res.status} ${await res.text()}`)
}

/** Calls the test's control endpoint; asserts success and returns the parsed JSON body, if any. */
export async function control(method, path){
  const res = await fetch(new URL(path, env.control), {method, signal: AbortSignal.timeout(40000)})
  const text = await res.text()
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

/**
 * A phoenix.js socket on one node (or on the load balancer), with a transcript of its frames for failure
 * messages. Disconnected when the test ends.
 */
export class Member {
  /** node: index into env.nodes, or "lb". */
  constructor(t, {node, token = "alice", ...opts}){
    this.node = node
    this.name = `${token}@${node === "lb" ? "lb" : "node" + node}`
    this.log = []
    this.opens = 0
    this.closes = 0
    this.socket = new Socket(node === "lb" ? env.lb : env.nodes[node], {
      transport: WebSocket,
      params: {token},
      timeout: 5000,
      // Reconnect quickly, and keep trying: a node may be down for a while.
      reconnectAfterMs: () => 200,
      rejoinAfterMs: () => 500,
      ...opts,
    })
    this.socket.onOpen(() => { this.opens++; this.record("open") })
    this.socket.onClose(e => { this.closes++; this.record(`close ${e && e.code}`) })
    this.socket.onMessage(m => this.record(`<- ${m.topic} ${m.event} ${JSON.stringify(m.payload)}`))
    t.after(() => this.disconnect())
    this.socket.connect()
  }

  record(line){
    this.log.push(line)
    if(this.log.length > 200){ this.log.shift() }
  }

  transcript(){
    return `transcript of ${this.name} (${env.pkg}):\n  ${this.log.slice(-40).join("\n  ") || "(none)"}`
  }

  /** Resolves once the socket is open. */
  opened(ms = 5000){
    return until(`${this.name} open`, ms, () => this.socket.isConnected(), () => this.transcript())
  }

  /**
   * Joins topic with a phoenix.js Presence attached before the join (as an app does) and records every
   * event named in `events`. Resolves once joined.
   */
  async join(topic, events = ["shout", "news"]){
    const channel = this.socket.channel(topic, {})
    const presence = new Presence(channel)
    const got = {}
    for(const ev of events){
      got[ev] = []
      channel.on(ev, p => got[ev].push(p))
    }
    const reply = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: join ${topic} timed out\n${this.transcript()}`)), 5000)
      channel.join()
        .receive("ok", r => { clearTimeout(timer); resolve(r) })
        .receive("error", r => { clearTimeout(timer); reject(new Error(`${this.name}: join ${topic}: ${JSON.stringify(r)}`)) })
    })
    this.channel = channel
    this.presence = presence
    this.got = got
    return reply
  }

  /** Pushes event (no reply expected). */
  push(event, payload){
    this.channel.push(event, payload)
  }

  /** Pushes event and resolves with {status, response}. */
  call(event, payload = {}, ms = 5000){
    return new Promise(resolve => {
      this.channel.push(event, payload, ms)
        .receive("ok", response => resolve({status: "ok", response}))
        .receive("error", response => resolve({status: "error", response}))
        .receive("timeout", () => resolve({status: "timeout"}))
    })
  }

  /** The presence list as sorted "key:ref,ref" strings: what every client of a topic must agree on. */
  list(){
    if(!this.presence){ return [] }
    return this.presence.list((key, {metas}) => `${key}:${metas.map(m => m.phx_ref).sort().join(",")}`).sort()
  }

  /** The presence keys. */
  keys(){
    return this.presence ? this.presence.list(key => key).sort() : []
  }

  until(what, ms, predicate){
    return until(`${this.name}: ${what}`, ms, predicate, () => this.transcript())
  }

  disconnect(){
    return new Promise(resolve => this.socket.disconnect(resolve))
  }
}

/** Connects a member to node and waits for the socket to open. */
export async function member(t, node, token, opts = {}){
  const m = new Member(t, {node, token, ...opts})
  await m.opened()
  return m
}

/** Waits until every member's presence list has exactly the keys `keys` and all the lists are equal. */
export async function converged(members, keys, ms = REPLICATION_MS){
  const want = [...keys].sort()
  const detail = () => members.map(m => `${m.name}: ${JSON.stringify(m.list())}`).join("\n")
  await until(`presence ${JSON.stringify(want)} everywhere`, ms, () => {
    const first = JSON.stringify(members[0].list())
    return members.every(m => JSON.stringify(m.keys()) === JSON.stringify(want) && JSON.stringify(m.list()) === first)
  }, detail)
}
