// Presence on room:*: phoenix.js's own Presence object (onSync/onJoin/onLeave) fed by the server's
// presence_state and presence_diff, across tabs, leaves, channel crashes and killed sockets.
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {TEST_TIMEOUT, connected, env, post, uniqueTopic} from "../lib/harness.js"

const {Presence} = await import(env.pkg)

const opts = {timeout: TEST_TIMEOUT}

/**
 * Joins topic with a Presence attached before the join, as an app does, so that the first
 * presence_state is not missed. Records every onJoin/onLeave callback.
 */
async function joinTracked(client, topic){
  const channel = client.socket.channel(topic, {})
  const presence = new Presence(channel)
  const calls = []
  let syncs = 0
  presence.onJoin((key, current, joined) => calls.push(`join ${key} ${current ? "again" : "new"} +${joined.metas.length}`))
  presence.onLeave((key, current, left) => calls.push(`leave ${key} -${left.metas.length} =${current.metas.length}`))
  presence.onSync(() => syncs++)
  const {status, response} = await client.reply(channel.join(), `join ${topic}`, 3000)
  client.equal(status, "ok", `join ${topic}: ${JSON.stringify(response)}`)
  return {client, channel, presence, calls, syncs: () => syncs}
}

/** The presence list as "key:rating,rating key:rating", sorted: what a UI would render. */
function summary(presence){
  return presence.list((key, {metas}) => `${key}:${metas.map(m => m.rating).sort().join(",")}`).sort().join(" ")
}

/** The phx_refs of key's metas. */
function refs(presence, key){
  return presence.list((k, {metas}) => (k === key ? metas.map(m => m.phx_ref) : [])).flat().sort()
}

/** Waits until the member's Presence lists want. */
function synced(member, want, ms = 3000){
  return member.client.until(`presence ${JSON.stringify(want)} (have ${JSON.stringify(summary(member.presence))})`, ms,
    () => summary(member.presence) === want)
}

describe("presence", () => {
  it("two users: presence_state on join, joins and leaves as diffs, every meta with a phx_ref", opts, async t => {
    const topic = uniqueTopic()
    const alice = await joinTracked(await connected(t, "alice"), topic)
    await synced(alice, "alice:1500")
    const bob = await joinTracked(await connected(t, "bob"), topic)
    await synced(bob, "alice:1500 bob:1400")
    await synced(alice, "alice:1500 bob:1400")
    for(const m of [alice, bob]){
      for(const key of ["alice", "bob"]){
        const r = refs(m.presence, key)
        assert.equal(r.length, 1, `${key} has one meta at ${m.client.name}`)
        assert.match(r[0], /^\S+$/, "phx_ref")
      }
    }
    // Both saw the same refs: they are the server's, not client-made.
    assert.deepEqual(refs(alice.presence, "bob"), refs(bob.presence, "bob"))
    assert.ok(alice.calls.includes("join bob new +1"), `alice's callbacks: ${alice.calls}`)

    await bob.client.reply(bob.channel.leave(), "leave", 3000)
    await synced(alice, "alice:1500")
    assert.ok(alice.calls.includes("leave bob -1 =0"), `alice's callbacks: ${alice.calls}`)
  })

  it("one user in two tabs is one key with two metas; closing one tab keeps the user present", opts, async t => {
    const topic = uniqueTopic()
    const bob = await joinTracked(await connected(t, "bob"), topic)
    const tab1 = await joinTracked(await connected(t, "alice"), topic)
    await synced(bob, "alice:1500 bob:1400")
    const tab2 = await joinTracked(await connected(t, "alice"), topic)
    for(const m of [bob, tab1, tab2]){ await synced(m, "alice:1500,1500 bob:1400") }
    assert.ok(bob.calls.includes("join alice again +1"), `bob's callbacks: ${bob.calls}`)

    assert.deepEqual(refs(tab1.presence, "alice"), refs(tab2.presence, "alice"), "both tabs see both metas")
    await tab2.client.disconnect()
    for(const m of [bob, tab1]){ await synced(m, "alice:1500 bob:1400") }
    assert.ok(bob.calls.includes("leave alice -1 =1"), `bob's callbacks: ${bob.calls}`)
  })

  it("a crashed channel's presence leaves; phoenix.js rejoins and it is tracked again", opts, async t => {
    const topic = uniqueTopic()
    const alice = await joinTracked(await connected(t, "alice"), topic)
    const bob = await joinTracked(await connected(t, "bob"), topic)
    await synced(alice, "alice:1500 bob:1400")
    const before = refs(alice.presence, "bob")

    bob.channel.push("crash", {})
    await synced(alice, "alice:1500")
    // phoenix.js rejoins after rejoinAfterMs (1 s for the first try).
    await synced(alice, "alice:1500 bob:1400", 5000)
    await synced(bob, "alice:1500 bob:1400")
    assert.notDeepEqual(refs(alice.presence, "bob"), before, "bob's rejoin is a new presence")
    assert.deepEqual(refs(bob.presence, "bob"), refs(alice.presence, "bob"),
      "bob's Presence took the new presence_state of the rejoin")
  })

  it("a socket killed with POST /api/disconnect leaves; it reconnects, rejoins and is tracked again", opts, async t => {
    const topic = uniqueTopic()
    const alice = await joinTracked(await connected(t, "alice"), topic)
    const bob = await joinTracked(await connected(t, "bob"), topic)
    await synced(alice, "alice:1500 bob:1400")
    const before = refs(alice.presence, "bob")
    const leftBefore = alice.calls.filter(c => c.startsWith("leave bob")).length

    const res = await post("/api/disconnect?id=2")
    assert.equal(res.status, 204, `POST /api/disconnect status: ${await res.text()}`)
    await alice.client.until("a new presence of bob", 5000, () => {
      const now = refs(alice.presence, "bob")
      return now.length === 1 && now[0] !== before[0]
    })
    assert.equal(alice.calls.filter(c => c.startsWith("leave bob")).length, leftBefore + 1,
      `bob left once: ${alice.calls}`)
    await synced(bob, "alice:1500 bob:1400")
    assert.deepEqual(refs(bob.presence, "bob"), refs(alice.presence, "bob"))
    assert.equal(bob.client.opens, 2, `one reconnect\n${bob.client.transcript()}`)
  })
})
