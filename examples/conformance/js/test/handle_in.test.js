// room:* handle_in events answered to the sender alone, and the channel lifecycle (crash, stop).
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {TEST_TIMEOUT, connected, isV2, sleep, uniqueTopic, users} from "../lib/harness.js"

const opts = {timeout: TEST_TIMEOUT}

async function joined(t, token = "alice"){
  const client = await connected(t, token)
  const channel = await client.joinOk(uniqueTopic())
  return {client, channel}
}

describe("handle_in replies", () => {
  it("echo replies ok with the payload", opts, async t => {
    const {client, channel} = await joined(t)
    const payload = {a: 1, s: "héllo <&>", list: [1, "two", null], nested: {ok: true}}
    client.equal(await client.push(channel, "echo", payload), {status: "ok", response: payload}, "echo reply")
  })

  it("echo_error replies error with the payload", opts, async t => {
    const {client, channel} = await joined(t)
    client.equal(await client.push(channel, "echo_error", {e: 1}), {status: "error", response: {e: 1}}, "echo_error reply")
  })

  it("push_me pushes `pushed` then replies ok {}", opts, async t => {
    const {client, channel} = await joined(t)
    const order = []
    channel.on("pushed", payload => order.push(["pushed", payload]))
    await client.waitFor("reply to push_me", 3000, done => {
      channel.push("push_me", {p: 1}, 2000)
        .receive("ok", response => { order.push(["reply", {status: "ok", response}]); done() })
    })
    client.equal(order, [["pushed", {p: 1}], ["reply", {status: "ok", response: {}}]], "push then reply")
  })

  it("noreply sends nothing: the push times out, the channel lives on", opts, async t => {
    const {client, channel} = await joined(t)
    client.equal(await client.push(channel, "noreply", {}, 300), {status: "timeout", response: {}}, "noreply")
    client.equal(await client.push(channel, "echo", {after: 1}), {status: "ok", response: {after: 1}}, "echo after noreply")
  })

  it("async_reply replies ok later", opts, async t => {
    const {client, channel} = await joined(t)
    const start = Date.now()
    client.equal(await client.push(channel, "async_reply", {q: 1}), {status: "ok", response: {q: 1}}, "async reply")
    const elapsed = Date.now() - start
    assert.ok(elapsed >= 40, `async reply after ${elapsed} ms, expected about 50 ms\n${client.transcript()}`)
  })

  for(const token of ["alice", "bob", "carol"]){
    it(`whoami replies the connect-time assigns of ${token}`, opts, async t => {
      const {client, channel} = await joined(t, token)
      client.equal(await client.push(channel, "whoami"), {status: "ok", response: users[token]}, "whoami")
    })
  }

  it("binary_echo replies with the same bytes as a binary payload", {...opts, skip: !isV2 && "binary frames need vsn 2.0.0"}, async t => {
    const {client, channel} = await joined(t)
    const {status, response} = await client.push(channel, "binary_echo", new Uint8Array([1, 2, 3]).buffer)
    assert.equal(status, "ok", `binary_echo status\n${client.transcript()}`)
    assert.ok(response instanceof ArrayBuffer, `response is not an ArrayBuffer: ${JSON.stringify(response)}\n${client.transcript()}`)
    client.equal([...new Uint8Array(response)], [1, 2, 3], "binary_echo bytes")
  })
})

describe("channel lifecycle", () => {
  it("crash: onError fires, no reply, then phoenix.js rejoins and the channel works", opts, async t => {
    const client = await connected(t, "alice")
    const channel = client.socket.channel(uniqueTopic())
    let joins = 0
    let nextJoin = () => {}
    channel.join().receive("ok", () => { joins++; nextJoin() })
    await client.waitFor("first join", 3000, done => { nextJoin = done })
    const errored = client.waitFor("channel onError", 2000, done => channel.onError(done))
    const rejoined = client.waitFor("rejoin after crash", 5000, done => { nextJoin = done })
    const crash = client.push(channel, "crash", {}, 500)
    const reason = await errored
    assert.equal(typeof reason, "object", "phx_error payload")
    client.equal(await crash, {status: "timeout", response: {}}, "reply to crash")
    await rejoined
    assert.equal(joins, 2)
    client.equal(await client.push(channel, "echo", {again: 1}), {status: "ok", response: {again: 1}}, "echo after rejoin")
  })

  it("stop: replies ok {bye: true}, then the channel closes", opts, async t => {
    const {client, channel} = await joined(t)
    const order = []
    const closed = client.waitFor("channel onClose", 2000, done => channel.onClose(() => { order.push("close"); done() }))
    channel.onError(() => order.push("error"))
    channel.push("stop", {}, 2000).receive("ok", response => order.push(["reply", {status: "ok", response}]))
    await closed
    await sleep(100)
    client.equal(order, [["reply", {status: "ok", response: {bye: true}}], "close"], "reply then phx_close")
  })
})
