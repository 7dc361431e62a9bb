// LongPoll across nodes: phoenix.js's LongPoll transport through a round-robin proxy with no sticky sessions, so a
// session opened on one node has its later polls and posts served by the others, which relay them to the owner
// through the cluster PubSub (the nodes share the LongPoll session key).
//
// phoenix.js 1.8 uses fetch when there is no XMLHttpRequest (Node 20 has fetch). 1.7 only knows XMLHttpRequest, so
// for it lib/longpoll-shim.js installs a minimal fetch-backed XMLHttpRequest and a `self` global before phoenix.js
// is loaded (its bundle captures its global object at load time).
import assert from "node:assert/strict"
import {describe, it} from "node:test"

import "../lib/longpoll-shim.js" // before phoenix.js is loaded

const {Member, TEST_TIMEOUT, api, control, converged, env, member, phoenix, sleep, uniqueTopic} = await import("./lib.mjs")
const opts = {timeout: TEST_TIMEOUT}

describe(`LongPoll across nodes (${env.pkg})`, () => {
  it("a session opened on one node works through every node: join, push, shouts, broadcasts, presence", opts, async t => {
    await control("DELETE", "/lb")
    const lp = new Member(t, {node: "lb", token: "alice", transport: phoenix.LongPoll})
    await lp.opened()
    assert.ok(lp.socket.conn instanceof phoenix.LongPoll, "on LongPoll")
    const topic = uniqueTopic()
    const ws = [await member(t, 0, "bob"), await member(t, 1, "carol"), await member(t, 2, "bob")]
    assert.deepEqual(await lp.join(topic), {username: "alice", rating: 1500})
    for(const m of ws){ await m.join(topic) }

    for(let i = 0; i < 6; i++){
      assert.deepEqual(await lp.call("echo", {i}), {status: "ok", response: {i}}, lp.transcript())
    }
    lp.push("shout", {n: 1})
    for(const m of ws){ await m.until("the LongPoll client's shout", 5000, () => m.got.shout.length === 1) }
    ws[1].push("shout", {n: 2})
    await lp.until("a WebSocket client's shout", 5000, () => lp.got.shout.some(p => p.n === 2))
    for(let n = 1; n <= 3; n++){
      await api(n - 1, `/api/broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n})
    }
    await lp.until("a broadcast from each node", 5000, () => lp.got.news.length === 3)
    assert.deepEqual(lp.got.news.map(p => p.n), [1, 2, 3])
    await converged([lp, ...ws], ["alice", "bob", "carol"])

    // The session lived on one node while its requests were spread over all three.
    const hits = await control("GET", "/lb")
    assert.equal(Object.keys(hits).length, 3, `LongPoll requests per node: ${JSON.stringify(hits)}`)
    await sleep(200)
    assert.equal(lp.opens, 1, `one session, never reopened\n${lp.transcript()}`)
  })
})
