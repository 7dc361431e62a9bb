// Presence across nodes: phoenix.js Presence on clients of different nodes lists the same presences (same keys, same
// phx_refs) as they join and leave on any node.
import {describe, it} from "node:test"
import {TEST_TIMEOUT, converged, env, member, uniqueTopic} from "./lib.mjs"

const opts = {timeout: TEST_TIMEOUT}

describe(`presence across nodes (${env.pkg})`, () => {
  it("every client lists the same presences, joins and leaves on any node included", opts, async t => {
    const topic = uniqueTopic()
    const alice = await member(t, 0, "alice")
    const bob = await member(t, 1, "bob")
    const carol = await member(t, 2, "carol")
    const alice2 = await member(t, 2, "alice") // a second tab of alice, on another node
    const all = [alice, bob, carol, alice2]
    for(const m of all){ await m.join(topic) }
    await converged(all, ["alice", "bob", "carol"])
    await alice.until("two metas for alice", 1000, () => alice.list().find(s => s.startsWith("alice:")).split(",").length === 2)

    await bob.channel.leave()
    await converged([alice, carol, alice2], ["alice", "carol"])

    await alice2.disconnect()
    await converged([alice, carol], ["alice", "carol"])
    await alice.until("one meta for alice", 5000, () => alice.list().find(s => s.startsWith("alice:")).split(",").length === 1)
    await converged([alice, carol], ["alice", "carol"])
  })
})
