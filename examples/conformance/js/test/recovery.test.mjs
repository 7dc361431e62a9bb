// Message recovery on feed:* (docs/recovery.md): the unmodified phoenix.js client plus the documented snippet
// (lib/recovery.mjs) loses nothing when its connection drops while broadcasts go on: after the rejoin it holds every
// broadcast, in order, exactly once.
import assert from "node:assert/strict"
import {createServer, connect} from "node:net"
import {describe, it} from "node:test"
import {TEST_TIMEOUT, connected, env, post, uniqueTopic} from "../lib/harness.js"
import {recoverableChannel} from "../lib/recovery.mjs"

const opts = {timeout: TEST_TIMEOUT}
const N = 1000

/**
 * Joins topic through the snippet and records every "post" (its n) and every join reply with how many posts had
 * arrived when it came.
 */
async function subscriber(client, topic){
  const channel = recoverableChannel(client.socket, topic)
  const got = []
  const replies = []
  channel.on("post", p => got.push(p.n))
  channel.join().receive("ok", r => replies.push({...r, before: got.length}))
  await client.until("joined", 3000, () => replies.length === 1)
  return {channel, got, replies}
}

/** A publisher joined to topic; post(n) pushes {n} and resolves on the ok reply. */
async function publisher(t, topic){
  const client = await connected(t, "bob")
  const {channel, status} = await client.join(topic)
  assert.equal(status, "ok")
  return n => new Promise((resolve, reject) => {
    channel.push("post", {n}, 5000)
      .receive("ok", resolve)
      .receive("error", e => reject(new Error(`post ${n}: ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error(`post ${n}: timeout`)))
  })
}

/** Publishes from..to, waiting for every 50th ok so the pipeline stays bounded. */
async function publish(send, from, to){
  const pending = []
  for(let n = from; n <= to; n++){
    pending.push(send(n))
    if(pending.length === 50 || n === to){ await Promise.all(pending.splice(0)) }
  }
}

/** Asserts got is exactly 1..n. */
function assertAll(client, got, n){
  const want = Array.from({length: n}, (_, i) => i + 1)
  const dups = got.filter((v, i) => got.indexOf(v) !== i)
  client.equal({count: got.length, dups: dups.slice(0, 10)}, {count: n, dups: []}, "posts received once each")
  client.equal(got, want, "posts in order")
}

/** A TCP proxy in front of the server whose connections a test can reset. */
async function tcpProxy(t){
  const target = new URL(env.url)
  const conns = new Set()
  const server = createServer(down => {
    const up = connect(Number(target.port), target.hostname)
    for(const s of [down, up]){
      conns.add(s)
      s.on("close", () => conns.delete(s))
      s.on("error", () => {})
    }
    down.pipe(up)
    up.pipe(down)
  })
  await new Promise(resolve => server.listen(0, "127.0.0.1", resolve))
  t.after(() => { for(const s of conns){ s.destroy() } server.close() })
  return {
    url: `ws://127.0.0.1:${server.address().port}${target.pathname}`,
    // Sends a TCP RST both ways: neither side gets a close frame.
    reset(){ for(const s of conns){ s.resetAndDestroy() } },
  }
}

describe("recovery", () => {
  it("first join: recovered false and the topic's position; a stale epoch: recovered false", opts, async t => {
    const topic = uniqueTopic("feed:t")
    const client = await connected(t, "alice")
    const first = await client.join(topic)
    client.equal(first.status, "ok", "join")
    assert.equal(first.response.recovered, false)
    assert.equal(first.response.phx_pos.offset, 0)
    assert.match(first.response.phx_pos.epoch, /^[0-9a-f]{16}$/)

    const send = await publisher(t, topic)
    await publish(send, 1, 3)
    const other = await connected(t, "carol")
    const stale = await other.join(topic, {since: {offset: 1, epoch: "not-this-one"}})
    client.equal({status: stale.status, recovered: stale.response.recovered, pos: stale.response.phx_pos},
      {status: "ok", recovered: false, pos: {offset: 3, epoch: first.response.phx_pos.epoch}}, "stale join")
  })

  it(`server-side disconnects during ${N} broadcasts: all ${N} arrive, in order, once`, opts, async t => {
    const topic = uniqueTopic("feed:t")
    // Slow to reconnect, so that broadcasts are surely missed while it is away.
    const client = await connected(t, "alice", {reconnectAfterMs: () => 400, rejoinAfterMs: () => 200})
    const sub = await subscriber(client, topic)
    const send = await publisher(t, topic)
    await publish(send, 1, 300)
    const res = await post("/api/disconnect?id=1")
    assert.equal(res.status, 204)
    await publish(send, 301, 400)
    await client.until("the first rejoin", 5000, () => sub.replies.length === 2)
    await publish(send, 401, 650)
    assert.equal((await post("/api/disconnect?id=1")).status, 204)
    await publish(send, 651, N)
    await client.until(`${N} posts`, 10000, () => sub.got.length >= N)
    await client.until("the second rejoin", 5000, () => sub.replies.length === 3)
    assertAll(client, sub.got, N)
    for(const r of sub.replies.slice(1)){ client.equal(r.recovered, true, "rejoin reply") }
    assert.ok(sub.replies[1].before <= 300, `the replay brought what was missed (had ${sub.replies[1].before} before the rejoin)`)
    assert.ok(client.closes.length >= 2, "the server closed the socket twice")
    assert.equal(sub.channel.position().offset, N)
  })

  it(`a proxy resetting the TCP connection during ${N} broadcasts: all ${N} arrive, in order, once`, opts, async t => {
    const topic = uniqueTopic("feed:t")
    const proxy = await tcpProxy(t)
    const client = await connected(t, "alice", {url: proxy.url, reconnectAfterMs: () => 400, rejoinAfterMs: () => 200})
    const sub = await subscriber(client, topic)
    const send = await publisher(t, topic)
    await publish(send, 1, 250)
    for(const [i, [from, to]] of [[251, 400], [401, 600], [601, 750]].entries()){
      proxy.reset()
      await publish(send, from, to) // missed while away
      await client.until(`rejoin ${i + 1}`, 5000, () => sub.replies.length === i + 2)
    }
    await publish(send, 751, N)
    await client.until(`${N} posts`, 10000, () => sub.got.length >= N)
    await client.until("three rejoins", 5000, () => sub.replies.length === 4)
    assertAll(client, sub.got, N)
    for(const r of sub.replies.slice(1)){ client.equal(r.recovered, true, "rejoin reply") }
  })
})
