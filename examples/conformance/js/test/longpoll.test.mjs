// phoenix.js's own LongPoll transport against the conformance server: session opening (410 + token), held polls,
// NDJSON batches (over 100 frames split into several POSTs), binary client→server frames as base64 lines, binary
// replies turned into error replies, the authToken header (1.8), and a server-side disconnect.
//
// phoenix.js 1.8 uses fetch when there is no XMLHttpRequest (Node 20 has fetch). 1.7 only knows XMLHttpRequest,
// so for it lib/longpoll-shim.js installs a minimal fetch-backed XMLHttpRequest and a `self` global first.
//
// Over LongPoll phoenix.js always speaks V2 whatever vsn says (it ignores custom encode/decode for LongPoll), and
// the server does the same, so these tests run unchanged in the vsn 1.0.0 rows.
import assert from "node:assert/strict"
import {describe, it} from "node:test"

import "../lib/longpoll-shim.js" // before phoenix.js is loaded

const {Client, TEST_TIMEOUT, env, is18, phoenixVersion, post, uniqueTopic, userReply} = await import("../lib/harness.js")
const {LongPoll} = await import(env.pkg)
const opts = {timeout: TEST_TIMEOUT}

/** A phoenix.js client on the LongPoll transport, open. */
async function longPoll(t, token = "alice", extra = {}){
  const client = new Client(t, {token, transport: LongPoll, ...extra})
  await client.opened()
  assert.ok(client.socket.conn instanceof LongPoll, `not on LongPoll (${phoenixVersion})`)
  return client
}

/** An ArrayBuffer payload: phoenix.js sends it as a binary frame, which LongPoll POSTs as a base64 line. */
function bytes(...values){
  return new Uint8Array(values).buffer
}

describe(`LongPoll (phoenix.js ${phoenixVersion})`, () => {
  it("opens a session, joins, pushes and receives replies and broadcasts", opts, async t => {
    const client = await longPoll(t, "alice")
    const topic = uniqueTopic()
    const channel = await client.joinOk(topic)
    const echo = await client.push(channel, "echo", {hello: "longpoll"})
    client.equal(echo, {status: "ok", response: {hello: "longpoll"}}, "echo")
    const who = await client.push(channel, "whoami")
    client.equal(who.status, "ok", "whoami")

    const got = client.next(channel, "news")
    const resp = await post(`/api/broadcast?topic=${encodeURIComponent(topic)}&event=news`, {n: 1})
    assert.equal(resp.status, 204)
    client.equal(await got, {n: 1}, "broadcast")
  })

  it("sends 150 pushes of one tick in batches and gets every reply in order", opts, async t => {
    const client = await longPoll(t, "bob")
    const channel = await client.joinOk(uniqueTopic())
    const replies = []
    for(let i = 0; i < 150; i++){
      replies.push(client.push(channel, "echo", {i}, 5000))
    }
    const got = await Promise.all(replies)
    client.equal(got.map(r => r.status), Array(150).fill("ok"), "statuses")
    client.equal(got.map(r => r.response.i), [...Array(150).keys()], "order")
  })

  it("carries binary client frames as base64 lines; a binary reply becomes an error reply", opts, async t => {
    const client = await longPoll(t, "alice")
    const channel = await client.joinOk(uniqueTopic())
    const {status, response} = await client.push(channel, "binary_echo", bytes(1, 2, 3))
    client.equal(status, "error", "binary reply over LongPoll")
    assert.match(String(response && response.reason), /binary/, `reason ${JSON.stringify(response)}\n${client.transcript()}`)
    // The session is fine afterwards.
    client.equal(await client.push(channel, "echo", {after: true}), {status: "ok", response: {after: true}}, "echo after")
  })

  it("sends authToken as X-Phoenix-AuthToken", {...opts, skip: !is18 && "phoenix.js 1.7 has no authToken"}, async t => {
    const client = await longPoll(t, "alice", {authToken: "alice"})
    await client.joinOk(uniqueTopic())
  })

  it("reconnects and rejoins after a server-side disconnect while the app keeps pushing", {timeout: 30000}, async t => {
    const client = await longPoll(t, "carol")
    const channel = await client.joinOk(uniqueTopic())
    const opens = client.opens
    const joinRef = channel.joinRef()
    const resp = await post(`/api/disconnect?id=${3}`)
    assert.equal(resp.status, 204)
    // As with Phoenix, the held poll runs out its window (10 s) and requests for the ended session are answered
    // after 2 s: a push meeting the ended session makes 1.7 reconnect and rejoin (a 410 on a poll alone would make
    // it adopt a new session without rejoining); 1.8 also closes with 3410 when a poll gets a new session.
    const pusher = setInterval(() => channel.push("noreply", {}), 300)
    try {
      await client.until("socket reopened", 16000, () => client.opens > opens && client.socket.isConnected())
      // A rejoin sends a new join (new join_ref); 1.7 may first adopt a new session silently, with the channel
      // still "joined" on its side, until a push meets the ended session.
      await client.until("channel rejoined", 16000, () => channel.joinRef() !== joinRef && channel.state === "joined")
    } finally {
      clearInterval(pusher)
    }
    client.equal(await client.push(channel, "whoami"), {status: "ok", response: {id: 3, ...userReply("carol")}}, "whoami after rejoin")
  })
})
