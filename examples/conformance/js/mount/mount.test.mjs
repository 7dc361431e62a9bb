// phx mounted inside other routers (examples/chi): the unmodified phoenix.js connects to a socket on a path other
// than /socket, over WebSocket and LongPoll, through a chi sub-router with request logging and recovery middleware,
// and through http.StripPrefix. Driven by examples/chi/chi_test.go.
//
// Environment:
//   PHX_HTTP     the example's base URL, e.g. http://127.0.0.1:4000 (required)
//   PHX_MOUNTS   comma-separated socket endpoints to test, e.g. /realtime/live,/strip/socket (required)
//   PHOENIX_PKG  phoenix17, phoenix1721 or phoenix18
import assert from "node:assert/strict"
import {readFileSync} from "node:fs"
import {createRequire} from "node:module"
import {dirname, join} from "node:path"
import {describe, it} from "node:test"
import {WebSocket} from "ws"

import "../lib/longpoll-shim.js" // before phoenix.js is loaded

const http = process.env.PHX_HTTP
const mounts = (process.env.PHX_MOUNTS || "").split(",").filter(Boolean)
const pkg = process.env.PHOENIX_PKG || "phoenix18"
if(!http || mounts.length === 0){ throw new Error("PHX_HTTP and PHX_MOUNTS must be set") }
const require = createRequire(import.meta.url)
const version = JSON.parse(readFileSync(join(dirname(require.resolve(pkg)), "../../package.json"), "utf8")).version
const {Socket, LongPoll} = await import(pkg)

const WAIT = 5000
let seq = 0

function within(what, ms, register){
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    register(v => { clearTimeout(timer); resolve(v) })
  })
}

function reply(push, what){
  return within(what, WAIT, done => {
    for(const status of ["ok", "error", "timeout"]){ push.receive(status, response => done({status, response})) }
  })
}

/** Resolves once cond() holds, checking every 20 ms; the check stops on timeout too. */
async function until(what, ms, cond){
  const deadline = Date.now() + ms
  while(!cond()){
    if(Date.now() > deadline){ throw new Error(`timed out after ${ms} ms waiting for ${what}`) }
    await new Promise(r => setTimeout(r, 20))
  }
}

async function post(path, body){
  const res = await fetch(http + path, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body ?? {})})
  return res.status
}

for(const mount of mounts){
  for(const transport of ["websocket", "longpoll"]){
    describe(`phoenix.js ${version} at ${mount} over ${transport}`, () => {
      it("connects, joins, echoes, receives broadcasts, and comes back after a server-side disconnect", {timeout: 40000}, async t => {
        const name = `u${process.pid}x${++seq}`
        const socket = new Socket(http.replace(/^http/, "ws") + mount, {
          transport: transport === "longpoll" ? LongPoll : WebSocket,
          params: {token: name},
          timeout: WAIT,
          reconnectAfterMs: () => 100,
          rejoinAfterMs: () => 100,
        })
        t.after(() => socket.disconnect())
        let joins = 0
        socket.connect()
        const topic = `room:${name}`
        const channel = socket.channel(topic, {})
        const shouts = []
        channel.on("shout", p => shouts.push(p))
        const first = await within("join", WAIT, done => channel.join().receive("ok", r => { joins++; done(r) }))
        assert.deepEqual(first, {user: name})
        assert.equal(socket.transport === LongPoll || socket.conn instanceof LongPoll, transport === "longpoll", "transport")

        assert.deepEqual(await reply(channel.push("echo", {n: 1}), "echo"), {status: "ok", response: {n: 1}})
        const news = within("broadcast", WAIT, done => channel.on("news", done))
        assert.equal(await post(`/realtime/api/broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 2}), 204)
        assert.deepEqual(await news, {n: 2})

        // After a server-side disconnect phoenix.js reconnects and rejoins; a LongPoll client that keeps pushing
        // comes back on 1.7 too (its POST meets the ended session).
        assert.equal(await post(`/realtime/api/disconnect?id=${name}`), 204)
        const pusher = setInterval(() => channel.push("shout", {ping: true}), 300)
        try {
          await until("rejoin after the disconnect", 20000, () => joins >= 2 && channel.state === "joined")
        } finally {
          clearInterval(pusher)
        }
        assert.deepEqual(await reply(channel.push("echo", {n: 3}), "echo after rejoin"), {status: "ok", response: {n: 3}})
        const seen = shouts.length
        channel.push("shout", {last: true})
        await until("own shout after rejoin", WAIT, () => shouts.slice(seen).some(p => p.last))
      })
    })
  }
}
