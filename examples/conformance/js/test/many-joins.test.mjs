// One socket joining 1,000 topics one after another, each join waiting for its reply (a dashboard
// subscribing at page load). Phoenix answers every join past its 100-channel limit with "too many
// channels joined" and keeps the socket; so must we: no close, and heartbeats, pushes and broadcasts
// keep working throughout, including while phoenix.js retries the refused joins in the background.
import {describe, it} from "node:test"
import {Client, env} from "../lib/harness.js"

describe("many sequential joins", () => {
  it("1,000 joins: 100 ok, the rest refused for the channel limit, the socket stays", {timeout: 60000}, async t => {
    const client = new Client(t, {token: "alice"})
    await client.opened()
    const run = `${process.pid}-${Date.now()}`
    const counts = {ok: 0, tooMany: 0}
    const joined = []
    for(let i = 0; i < 1000; i++){
      const {channel, status, response} = await client.join(`bench:many-${run}-${i}`)
      if(status === "ok"){
        counts.ok++
        joined.push(channel)
      } else {
        client.equal({status, response}, {status: "error", response: {reason: "too many channels joined"}}, `join ${i}`)
        counts.tooMany++
        // phoenix.js would retry the refused join on its rejoin timer; the app gives up on it.
        channel.leave()
      }
      if(i % 100 === 99){
        await check(client, joined[0], `after ${i + 1} joins`)
      }
    }
    client.equal(counts, {ok: 100, tooMany: 900}, "join outcomes")
    client.equal(client.closes, [], "no close")
  })

  it("refused joins left to phoenix.js's rejoin timer do not get the socket closed", {timeout: 60000}, async t => {
    const client = new Client(t, {token: "bob"})
    await client.opened()
    const run = `${process.pid}-${Date.now()}`
    const channels = []
    for(let i = 0; i < 300; i++){
      const {channel, status} = await client.join(`bench:retry-${run}-${i}`)
      if(status === "ok"){ channels.push(channel) }
    }
    client.equal(channels.length, 100, "channels joined")
    // 200 errored channels now rejoin on phoenix.js's backoff (1 s, 2 s, 5 s...), all at once.
    await new Promise(resolve => setTimeout(resolve, 3500))
    await check(client, channels[0], "after the rejoin waves")
    client.equal(client.closes, [], "no close")
  })
})

/** Heartbeat, echo and a broadcast on an accepted channel all answer. */
async function check(client, channel, when){
  const hb = await client.waitFor(`heartbeat reply ${when}`, 3000, done => {
    const ref = client.socket.onMessage(msg => {
      if(msg.topic === "phoenix" && msg.event === "phx_reply"){ done(msg.payload.status) }
    })
    client.socket.sendHeartbeat()
    return () => client.socket.off([ref])
  })
  client.equal(hb, "ok", `heartbeat ${when}`)
  const echo = await client.push(channel, "echo", {when})
  client.equal(echo, {status: "ok", response: {when}}, `echo ${when}`)
  const got = client.next(channel, "tick", 3000)
  const res = await fetch(`${env.http}/api/broadcast?topic=${encodeURIComponent(channel.topic)}&event=tick`, {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({when}),
  })
  client.equal(res.status, 204, `broadcast ${when}`)
  client.equal(await got, {when}, `broadcast received ${when}`)
}
