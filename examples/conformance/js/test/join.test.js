// Joining room:* (success, refusals), unmatched topics and the per-connection channel limit.
import assert from "node:assert/strict"
import {describe, it} from "node:test"
import {TEST_TIMEOUT, connected, uniqueTopic, userReply} from "../lib/harness.js"

const opts = {timeout: TEST_TIMEOUT}

describe("join", () => {
  it("replies ok {username, rating}", opts, async t => {
    const client = await connected(t, "carol")
    const {status, response} = await client.join(uniqueTopic(), {some: "param"})
    client.equal({status, response}, {status: "ok", response: userReply("carol")}, "join reply")
  })

  it("refuses room:locked with {reason: unauthorized}", opts, async t => {
    const client = await connected(t, "alice")
    const {status, response} = await client.join("room:locked")
    client.equal({status, response}, {status: "error", response: {reason: "unauthorized"}}, "join reply")
  })

  it("refuses {fail_join: true} with {reason: join failed}", opts, async t => {
    const client = await connected(t, "alice")
    const {status, response} = await client.join(uniqueTopic(), {fail_join: true})
    client.equal({status, response}, {status: "error", response: {reason: "join failed"}}, "join reply")
  })

  it("refuses an unmatched topic with {reason: unmatched topic}", opts, async t => {
    const client = await connected(t, "alice")
    const {status, response} = await client.join("foo:bar")
    client.equal({status, response}, {status: "error", response: {reason: "unmatched topic"}}, "join reply")
  })

  it("joins 100 channels; the 101st gets {reason: too many channels joined}", opts, async t => {
    const client = await connected(t, "bob")
    const prefix = uniqueTopic("room:x")
    const joins = []
    for(let i = 1; i <= 100; i++){ joins.push(client.join(`${prefix}-${i}`, {}, 8000)) }
    const replies = await Promise.all(joins)
    const failed = replies.filter(r => r.status !== "ok")
    assert.equal(failed.length, 0, `${failed.length} of 100 joins failed, first: ${JSON.stringify(failed[0])}\n${client.transcript()}`)
    const {status, response} = await client.join(`${prefix}-101`)
    client.equal({status, response}, {status: "error", response: {reason: "too many channels joined"}}, "101st join reply")
    // the other channels still work
    const echo = await client.push(replies[99].channel, "echo", {n: 100})
    client.equal(echo, {status: "ok", response: {n: 100}}, "echo on channel 100")
  })
})
