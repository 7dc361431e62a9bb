// Broadcasts across nodes: shout and shout_others (broadcast_from) between phoenix.js clients on different nodes,
// the shout intercept, POST /api/broadcast on one node reaching every node, and POST /api/disconnect on one node
// closing a user's sockets on every node.
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {TEST_TIMEOUT, api, env, member, sleep, uniqueTopic} from "./lib.mjs"

const opts = {timeout: TEST_TIMEOUT}

/** Time given to a stray duplicate or a wrongly delivered message to show up. */
const SETTLE_MS = 400

describe(`broadcasts across nodes (${env.pkg})`, () => {
  it("a shout from each node reaches every subscriber on every node exactly once", opts, async t => {
    const topic = uniqueTopic()
    const ms = [await member(t, 0, "alice"), await member(t, 1, "bob"), await member(t, 2, "carol")]
    for(const m of ms){ await m.join(topic) }
    ms.forEach((m, i) => m.push("shout", {n: i}))
    for(const m of ms){
      await m.until("three shouts", 5000, () => m.got.shout.length === 3)
    }
    await sleep(SETTLE_MS)
    for(const m of ms){
      const got = m.got.shout.map(p => `${p.from}:${p.n}`).sort()
      assert.deepEqual(got, ["alice:0", "bob:1", "carol:2"], `${m.name}\n${m.transcript()}`)
    }
  })

  it("shout_others skips the sender on its node but reaches the others, the sender's other sockets included", opts, async t => {
    const topic = uniqueTopic()
    const sender = await member(t, 0, "alice")
    const peers = [await member(t, 0, "bob"), await member(t, 1, "carol"), await member(t, 2, "bob"), await member(t, 1, "alice")]
    for(const m of [sender, ...peers]){ await m.join(topic) }
    sender.push("shout_others", {body: "hi"})
    for(const m of peers){
      await m.until("the shout", 5000, () => m.got.shout.length === 1)
      assert.deepEqual(m.got.shout, [{body: "hi", from: "alice"}], m.transcript())
    }
    await sleep(SETTLE_MS)
    assert.deepEqual(sender.got.shout, [], `the sender got its own shout_others\n${sender.transcript()}`)
    for(const m of peers){ assert.equal(m.got.shout.length, 1, `duplicate at ${m.name}\n${m.transcript()}`) }
  })

  it("the shout intercept runs on the receiving node: bob skips secret shouts wherever he is", opts, async t => {
    const topic = uniqueTopic()
    const alice = await member(t, 0, "alice")
    const bob = await member(t, 1, "bob")
    const carol = await member(t, 2, "carol")
    for(const m of [alice, bob, carol]){ await m.join(topic) }
    alice.push("shout", {secret: true})
    alice.push("shout", {secret: false})
    await carol.until("both shouts", 5000, () => carol.got.shout.length === 2)
    await bob.until("the public shout", 5000, () => bob.got.shout.length === 1)
    await sleep(SETTLE_MS)
    assert.deepEqual(bob.got.shout, [{secret: false, from: "alice"}], bob.transcript())
  })

  it("POST /api/broadcast on one node reaches the subscribers of every node, in order", opts, async t => {
    const topic = uniqueTopic()
    const ms = [await member(t, 0, "alice"), await member(t, 1, "bob"), await member(t, 2, "carol")]
    for(const m of ms){ await m.join(topic) }
    for(let n = 1; n <= 20; n++){
      await api(2, `/api/broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n})
    }
    for(const m of ms){
      await m.until("20 broadcasts", 5000, () => m.got.news.length === 20)
    }
    await sleep(SETTLE_MS)
    for(const m of ms){
      assert.deepEqual(m.got.news.map(p => p.n), [...Array(20).keys()].map(i => i + 1), `${m.name}\n${m.transcript()}`)
    }
  })

  it("POST /api/disconnect on one node closes the user's sockets on every node; they reconnect", opts, async t => {
    const bobs = [await member(t, 1, "bob"), await member(t, 2, "bob"), await member(t, 0, "bob")]
    const alice = await member(t, 2, "alice")
    const topic = uniqueTopic()
    for(const m of [...bobs, alice]){ await m.join(topic) }
    await api(0, "/api/disconnect?id=2")
    for(const m of bobs){
      await m.until("closed and reopened", 8000, () => m.closes >= 1 && m.opens >= 2 && m.socket.isConnected())
    }
    await sleep(SETTLE_MS)
    assert.equal(alice.closes, 0, `alice was disconnected too\n${alice.transcript()}`)
    // Their channels rejoin and work.
    for(const m of bobs){
      await m.until("rejoined", 8000, () => m.channel.state === "joined")
      assert.deepEqual(await m.call("whoami"), {status: "ok", response: {id: 2, username: "bob", rating: 1400}})
    }
  })
})
