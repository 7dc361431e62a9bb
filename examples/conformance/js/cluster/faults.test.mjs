// Faults: the broker restarting in the middle of a run, and a node killed with SIGKILL. Each test leaves the
// cluster as it found it (broker up, three nodes), so that the suite can run again for another phoenix.js.
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {REPLICATION_MS, TEST_TIMEOUT, api, control, converged, env, member, sleep, until, uniqueTopic} from "./lib.mjs"

const opts = {timeout: TEST_TIMEOUT}

/** Sends shouts {origin, kind, n} until every member has one from every node, or fails after ms. */
async function probe(ms, members){
  let n = 0
  const seenAll = () => members.every(m => members.every(o => m.got.shout.some(p => p.kind === "probe" && p.origin === o.name)))
  const deadline = Date.now() + ms
  while(!seenAll()){
    if(Date.now() > deadline){
      throw new Error(`cross-node shouts did not flow again within ${ms} ms\n${members.map(m => m.transcript()).join("\n")}`)
    }
    n++
    for(const m of members){ m.push("shout", {origin: m.name, kind: "probe", n}) }
    await sleep(200)
  }
  return n
}

describe(`faults (${env.pkg})`, () => {
  it("broker restart: local delivery goes on, cross-node delivery recovers, nothing is duplicated or reordered", opts, async t => {
    const topic = uniqueTopic()
    const ms = [await member(t, 0, "alice"), await member(t, 1, "bob"), await member(t, 2, "carol")]
    const local = await member(t, 0, "carol") // alice's neighbour on node 0
    for(const m of [...ms, local]){ await m.join(topic) }
    await converged([...ms, local], ["alice", "bob", "carol"])
    ms[0].push("shout", {origin: ms[0].name, kind: "before", n: 1})
    for(const m of [...ms, local]){ await m.until("the shout before the outage", 5000, () => m.got.shout.length === 1) }

    t.after(() => control("POST", "/broker/start")) // whatever happens, leave the broker up
    await control("POST", "/broker/kill")
    const down = Date.now()
    // Clients keep working on their node: replies, and shouts between the sockets of one node.
    assert.deepEqual(await ms[1].call("echo", {during: true}), {status: "ok", response: {during: true}})
    for(let n = 1; n <= 5; n++){ ms[0].push("shout", {origin: ms[0].name, kind: "outage", n}) }
    await local.until("local shouts during the outage", 5000, () => local.got.shout.filter(p => p.kind === "outage").length === 5)
    // Long enough for every node to notice, short of the presence down period.
    await sleep(1000)
    await control("POST", "/broker/start")
    const outage = Date.now() - down

    const probes = await probe(20000, ms)
    const recovered = Date.now() - down
    console.log(`METRIC broker_outage_ms=${outage}`)
    console.log(`METRIC cross_node_recovered_ms=${recovered}`)
    for(const m of ms){
      for(let n = 1; n <= 20; n++){ m.push("shout", {origin: m.name, kind: "after", n}) }
    }
    for(const m of [...ms, local]){
      await m.until("60 shouts after the recovery", 8000, () => m.got.shout.filter(p => p.kind === "after").length === 60)
    }
    await sleep(500)
    for(const m of [...ms, local]){
      const keys = m.got.shout.map(p => `${p.origin}/${p.kind}/${p.n}`)
      assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), [], `duplicates at ${m.name}\n${m.transcript()}`)
      for(const o of ms){
        // Per sender, what arrived is in the order it was sent: before < outage (possibly missing) < probes < after.
        const rank = {before: 0, outage: 1, probe: 2, after: 3}
        const seq = m.got.shout.filter(p => p.origin === o.name).map(p => rank[p.kind] * 1000 + p.n)
        assert.deepEqual(seq, [...seq].sort((a, b) => a - b), `order of ${o.name}'s shouts at ${m.name}`)
        assert.equal(seq.filter(s => s >= 3000).length, 20, `${o.name}'s shouts after the recovery at ${m.name}`)
      }
      if(m.node === 0){
        assert.equal(m.got.shout.filter(p => p.kind === "outage").length, 5, `local shouts during the outage at ${m.name}`)
      }
    }
    assert.ok(probes >= 1)
    // Presence is whole again everywhere (an outage shorter than the down period leaves it untouched).
    await converged([...ms, local], ["alice", "bob", "carol"], REPLICATION_MS + env.downMs)
    // Server-side broadcasts cross nodes again too.
    await api(1, `/api/broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 1})
    for(const m of ms){ await m.until("news after the recovery", 5000, () => m.got.news.length === 1) }
  })

  it("kill -9 of a node: its users leave the others' presence within the down period; a restarted node rejoins", opts, async t => {
    const topic = uniqueTopic()
    const alice = await member(t, 0, "alice")
    const bob = await member(t, 1, "bob")
    const carol = await member(t, 2, "carol") // on the node that dies
    for(const m of [alice, bob, carol]){ await m.join(topic) }
    await converged([alice, bob, carol], ["alice", "bob", "carol"])
    // Give node 2 a heartbeat in which it is idle, so its last message is recent and the measure is typical.
    await sleep(env.broadcastMs)

    t.after(() => control("POST", "/node/start?i=2")) // whatever happens, leave three nodes
    const killed = Date.now()
    await control("POST", "/node/kill?i=2")
    // The dead node's client would keep reconnecting to a closed port.
    await carol.disconnect()
    // Silent peers are looked for every down/20 (at most 1 s), so the presences leave at most that long after the
    // down period, counted from the node's last heartbeat (before the kill); 1 s more covers the diff's way here.
    const limit = env.downMs + Math.min(env.downMs / 20, 1000) + 1000
    await until(`carol gone from alice and bob within ${limit} ms`, limit + 2000,
      () => !alice.keys().includes("carol") && !bob.keys().includes("carol"),
      () => `${alice.name}: ${alice.list()}\n${bob.name}: ${bob.list()}`)
    const cleared = Date.now() - killed
    console.log(`METRIC dead_node_presence_clear_ms=${cleared}`)
    assert.ok(cleared <= limit, `presence cleared after ${cleared} ms, more than the down period allows (${limit} ms)`)
    assert.deepEqual(alice.list(), bob.list())
    assert.ok(cleared >= env.downMs - env.broadcastMs - 500, `cleared after ${cleared} ms: before the down period`)

    // A restarted node (same name, new run) rejoins: its new clients show everywhere, nothing of the old run does.
    await control("POST", "/node/start?i=2")
    const carol2 = await member(t, 2, "carol")
    await carol2.join(topic)
    await converged([alice, bob, carol2], ["alice", "bob", "carol"], REPLICATION_MS * 2)
    await sleep(REPLICATION_MS)
    await converged([alice, bob, carol2], ["alice", "bob", "carol"])
    for(const m of [alice, bob, carol2]){
      const metas = m.list().find(s => s.startsWith("carol:"))
      assert.equal(metas.split(",").length, 1, `one carol at ${m.name}: ${m.list()}`)
    }
    carol2.push("shout", {hello: "from the restarted node"})
    for(const m of [alice, bob]){ await m.until("the restarted node's shout", 5000, () => m.got.shout.length === 1) }
  })
})
