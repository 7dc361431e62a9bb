// Graceful shutdown as phoenix.js lives it, driven by TestGracefulShutdown (shutdown_test.go), which runs two
// conformance servers behind a switchable TCP proxy and owns the SIGTERM. Not part of test/: it needs that setup.
//
// Clients of phoenix.js 1.7 and 1.8, with both serializers, join one room through the proxy (to server A) and echo.
// POST $PHX_CONTROL/shutdown takes A out of the proxy and sends it SIGTERM. Every client must then see close code
// 1012 (and no other close first), reconnect with its default backoff (through the proxy, now to B), rejoin the
// channel it had joined, and get echo replies again, all without the application doing anything.
//
// Environment: PHX_URL (the proxy's socket URL, ws://HOST:PORT/socket) and PHX_CONTROL (the test's HTTP base URL).
import assert from "node:assert/strict"
import {it} from "node:test"
import {WebSocket} from "ws"

const url = process.env.PHX_URL
const control = process.env.PHX_CONTROL
if(!url || !control){ throw new Error("PHX_URL and PHX_CONTROL must be set (run by TestGracefulShutdown)") }

const packages = {phoenix17: await import("phoenix17"), phoenix18: await import("phoenix18")}

// V1 serializer: one JSON object per text frame (phoenix.js's default is V2), as in lib/harness.js.
const v1 = {
  encode({join_ref, ref, topic, event, payload}, callback){
    callback(JSON.stringify({join_ref, ref, topic, event, payload}))
  },
  decode(raw, callback){
    const {join_ref, ref, topic, event, payload} = JSON.parse(raw)
    callback({join_ref, ref, topic, event, payload})
  },
}

/** One phoenix.js socket with one joined channel, and what happened to them. */
class Member {
  constructor(pkg, vsn, token, topic){
    this.name = `${pkg}/vsn${vsn}/${token}`
    this.log = []
    this.closes = []
    this.opens = 0
    this.joins = 0
    this.socket = new packages[pkg].Socket(url, {
      transport: WebSocket,
      params: {token},
      vsn,
      timeout: 3000,
      ...(vsn === "1.0.0" ? v1 : {}),
    })
    this.socket.onOpen(() => { this.opens++; this.log.push("open") })
    this.socket.onClose(e => { this.closes.push(e && e.code); this.log.push(`close ${e && e.code}`) })
    this.socket.onError(() => this.log.push("error"))
    this.socket.connect()
    this.channel = this.socket.channel(topic, {})
    // phoenix.js resends the same join push on every rejoin, so this hook counts them all.
    this.channel.join()
      .receive("ok", () => { this.joins++; this.log.push("joined") })
      .receive("error", r => this.log.push(`join error ${JSON.stringify(r)}`))
      .receive("timeout", () => this.log.push("join timeout"))
  }

  /** Pushes echo and resolves with {status, response}. */
  echo(payload){
    return new Promise(resolve => {
      this.channel.push("echo", payload, 2000)
        .receive("ok", response => resolve({status: "ok", response}))
        .receive("error", response => resolve({status: "error", response}))
        .receive("timeout", () => resolve({status: "timeout"}))
    })
  }

  disconnect(){
    return new Promise(resolve => this.socket.disconnect(resolve))
  }

  toString(){ return `${this.name}: ${this.log.join(", ")}` }
}

/** Polls predicate every 10 ms; rejects with the members' histories after ms. */
async function until(what, ms, predicate, members){
  const deadline = Date.now() + ms
  while(!predicate()){
    if(Date.now() > deadline){
      throw new Error(`timed out after ${ms} ms waiting for ${what}\n  ${members.join("\n  ")}`)
    }
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

it("SIGTERM: phoenix.js sees 1012, reconnects to the other node, rejoins and echoes", {timeout: 30000}, async t => {
  const topic = `room:shutdown-${process.pid}`
  const members = []
  for(const pkg of ["phoenix17", "phoenix18"]){
    for(const vsn of ["2.0.0", "1.0.0"]){
      for(const token of ["alice", "bob"]){ members.push(new Member(pkg, vsn, token, topic)) }
    }
  }
  t.after(() => Promise.all(members.map(m => m.disconnect())))

  await until("every member joined on A", 5000, () => members.every(m => m.joins === 1), members)
  for(const m of members){
    assert.deepEqual(await m.echo({n: 1, who: m.name}), {status: "ok", response: {n: 1, who: m.name}}, String(m))
  }

  const res = await fetch(`${control}/shutdown`, {method: "POST", signal: AbortSignal.timeout(3000)})
  assert.equal(res.status, 204)

  // Default timers: reconnect after 10 ms, channel rejoin as soon as the socket reopens.
  await until("every member closed, reopened and rejoined", 10000,
    () => members.every(m => m.closes.length >= 1 && m.opens >= 2 && m.joins >= 2), members)
  for(const m of members){
    assert.equal(m.closes[0], 1012, `first close must be 1012 (service restart)\n  ${m}`)
    assert.deepEqual(await m.echo({n: 2, who: m.name}), {status: "ok", response: {n: 2, who: m.name}}, String(m))
    assert.ok(m.socket.isConnected(), String(m))
    t.diagnostic(String(m))
  }
})
