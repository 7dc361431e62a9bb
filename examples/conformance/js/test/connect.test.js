// Connect (Authenticator), heartbeat and the 1.8 authToken option.
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {Client, TEST_TIMEOUT, connected, is18, sleep, uniqueTopic, userReply} from "../lib/harness.js"

const opts = {timeout: TEST_TIMEOUT}

describe("connect", () => {
  for(const token of ["alice", "bob", "carol"]){
    it(`accepts ${token}`, opts, async t => {
      const client = await connected(t, token)
      const {status, response} = await client.join(uniqueTopic())
      client.equal({status, response}, {status: "ok", response: userReply(token)}, "join reply")
    })
  }

  for(const [name, token] of [["a bad token", "mallory"], ["a missing token", null]]){
    it(`refuses ${name}; phoenix.js keeps retrying and no join succeeds`, opts, async t => {
      const client = new Client(t, {token})
      let joined = 0
      client.socket.channel(uniqueTopic()).join().receive("ok", () => joined++)
      await sleep(1200)
      assert.equal(client.opens, 0, `socket opened\n${client.transcript()}`)
      assert.equal(joined, 0, `a join succeeded\n${client.transcript()}`)
      // default backoff 10, 50, 100, 150, 200, 250, 500 ms: several attempts within the window
      assert.ok(client.errors >= 2, `expected repeated onError (retries), got ${client.errors}\n${client.transcript()}`)
    })
  }
})

describe("heartbeat", () => {
  it("keeps a socket with 200 ms heartbeats open and answers ping", opts, async t => {
    const client = await connected(t, "alice", {heartbeatIntervalMs: 200})
    await sleep(1500)
    assert.deepEqual(client.closes, [], `socket closed\n${client.transcript()}`)
    assert.ok(client.socket.isConnected(), `socket not connected\n${client.transcript()}`)
    const beats = client.log.filter(l => l.startsWith("<-") && l.includes(`"phoenix","phx_reply"`))
    assert.ok(beats.length >= 4, `expected >= 4 heartbeat replies in 1.5 s, got ${beats.length}\n${client.transcript()}`)
    const rtt = await client.waitFor("ping round trip", 2000, done => {
      assert.equal(client.socket.ping(done), true, "ping not sent")
    })
    assert.equal(typeof rtt, "number")
    assert.deepEqual(client.closes, [], `socket closed\n${client.transcript()}`)
  })
})

describe("authToken (phoenix.js 1.8)", () => {
  it("opens with authToken (Sec-WebSocket-Protocol) and the token param", {...opts, skip: !is18 && "phoenix.js 1.7 has no authToken"}, async t => {
    const client = await connected(t, "alice", {authToken: "alice"})
    assert.equal(client.socket.conn.protocol, "phoenix", "server must select the phoenix subprotocol")
    const {status, response} = await client.join(uniqueTopic())
    client.equal({status, response}, {status: "ok", response: userReply("alice")}, "join reply")
  })
})
