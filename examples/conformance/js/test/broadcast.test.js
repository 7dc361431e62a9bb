// Fan-out: shout / shout_others, the handle_out intercept, and the HTTP helpers
// (POST /api/broadcast, POST /api/disconnect).
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {TEST_TIMEOUT, connected, post, sleep, uniqueTopic} from "../lib/harness.js"

const opts = {timeout: TEST_TIMEOUT}

/** Connects each token and joins them all to one fresh topic. */
async function room(t, ...tokens){
  const topic = uniqueTopic()
  const members = []
  for(const token of tokens){
    const client = await connected(t, token)
    members.push({client, channel: await client.joinOk(topic)})
  }
  return {topic, members}
}

describe("broadcast", () => {
  it("shout reaches every subscriber, sender included, with from", opts, async t => {
    const {members: [alice, bob]} = await room(t, "alice", "bob")
    const got = [alice, bob].map(m => m.client.next(m.channel, "shout"))
    alice.channel.push("shout", {m: 1}, 500)
    const want = {m: 1, from: "alice"}
    alice.client.equal(await got[0], want, "shout at the sender")
    bob.client.equal(await got[1], want, "shout at bob")
  })

  it("shout_others reaches the others, not the sender", opts, async t => {
    const {members: [alice, bob]} = await room(t, "alice", "bob")
    const atAlice = alice.client.collect(alice.channel, "shout")
    const atBob = bob.client.next(bob.channel, "shout")
    alice.channel.push("shout_others", {m: 2}, 500)
    bob.client.equal(await atBob, {m: 2, from: "alice"}, "shout at bob")
    // a later reply on the sender's own channel, plus a grace period, bounds the wait
    await alice.client.push(alice.channel, "echo", {})
    await sleep(200)
    alice.client.equal(atAlice, [], "shouts at the sender")
  })

  it("intercept: a secret shout skips bob but reaches alice and carol", opts, async t => {
    const {members} = await room(t, "alice", "bob", "carol")
    const [alice, bob, carol] = members
    const got = members.map(m => m.client.collect(m.channel, "shout"))
    const publicAtBob = bob.client.next(bob.channel, "shout")
    alice.channel.push("shout", {n: 1, secret: true}, 500)
    alice.channel.push("shout", {n: 2}, 500)
    await publicAtBob
    await alice.client.until("both shouts", 2000, () => got[0].length >= 2)
    await carol.client.until("both shouts", 2000, () => got[2].length >= 2)
    await sleep(100)
    const secret = {n: 1, secret: true, from: "alice"}
    const plain = {n: 2, from: "alice"}
    alice.client.equal(got[0], [secret, plain], "shouts at alice")
    bob.client.equal(got[1], [plain], "shouts at bob")
    carol.client.equal(got[2], [secret, plain], "shouts at carol")
  })
})

describe("HTTP API", () => {
  it("POST /api/broadcast reaches joined clients (204)", opts, async t => {
    const {topic, members} = await room(t, "alice", "bob")
    const got = members.map(m => m.client.next(m.channel, "news"))
    const res = await post(`/api/broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 7, s: "x"})
    assert.equal(res.status, 204, `POST /api/broadcast status: ${await res.text()}`)
    for(const [i, m] of members.entries()){ m.client.equal(await got[i], {n: 7, s: "x"}, "broadcast payload") }
  })

  it("POST /api/disconnect closes that user's sockets (code != 1000); they reconnect and rejoin; others unaffected", opts, async t => {
    const topic = uniqueTopic()
    const alices = []
    for(let i = 0; i < 2; i++){
      const client = await connected(t, "alice")
      const channel = client.socket.channel(topic)
      const joinOk = []
      channel.join().receive("ok", () => joinOk.push(Date.now()))
      await client.until("join", 3000, () => joinOk.length === 1)
      alices.push({client, channel, joinOk})
    }
    const bob = await connected(t, "bob")
    const bobChannel = await bob.joinOk(topic)

    const closes = alices.map(a => a.client.nextClose(3000))
    const res = await post("/api/disconnect?id=1")
    assert.equal(res.status, 204, `POST /api/disconnect status: ${await res.text()}`)
    for(const [i, a] of alices.entries()){
      const code = await closes[i]
      assert.notEqual(code, 1000, `close code 1000 stops phoenix.js 1.7 from reconnecting\n${a.client.transcript()}`)
    }
    for(const a of alices){
      await a.client.until("rejoin after reconnect", 5000, () => a.joinOk.length >= 2)
      assert.equal(a.client.opens, 2, `expected one reconnect\n${a.client.transcript()}`)
      a.client.equal(await a.client.push(a.channel, "echo", {back: 1}), {status: "ok", response: {back: 1}}, "echo after rejoin")
    }
    bob.equal(bob.closes, [], "bob's socket closes")
    bob.equal(await bob.push(bobChannel, "echo", {bob: 1}), {status: "ok", response: {bob: 1}}, "bob's echo")
  })
})
