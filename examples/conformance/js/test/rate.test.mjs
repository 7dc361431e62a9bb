// rate / profile / whoami on room:*: ratings change through the server's user service and are read
// back fresh from its store, while the connect-time assigns (whoami, the join reply) never change.
// Other suites may run against the same server, so the checks are relative to the rating found.
import {describe, it} from "node:test"
import {TEST_TIMEOUT, connected, uniqueTopic, userReply} from "../lib/harness.js"

const opts = {timeout: TEST_TIMEOUT}

/** Pushes event and asserts an ok reply; resolves with its rating. */
async function rating(client, channel, event, payload = {}){
  const {status, response} = await client.push(channel, event, payload)
  client.equal({status, type: typeof response.rating}, {status: "ok", type: "number"}, `${event} ${JSON.stringify(payload)}`)
  return response.rating
}

describe("rate and profile", () => {
  it("rate applies deltas to the stored rating; profile reads it; whoami keeps the connect-time one", opts, async t => {
    const topic = uniqueTopic()
    const carol = await connected(t, "carol")
    const channel = await carol.joinOk(topic)
    const start = await rating(carol, channel, "profile")
    carol.equal(await rating(carol, channel, "rate", {delta: 7}), start + 7, "rate +7")
    carol.equal(await rating(carol, channel, "rate", {delta: -2}), start + 5, "rate -2")
    carol.equal(await rating(carol, channel, "profile"), start + 5, "profile")
    carol.equal(await rating(carol, channel, "whoami"), userReply("carol").rating, "whoami")

    // A later connection still gets the connect-time assigns, but the fresh stored rating.
    const again = await connected(t, "carol")
    const channel2 = await again.joinOk(uniqueTopic())
    again.equal(await rating(again, channel2, "whoami"), userReply("carol").rating, "whoami, new socket")
    again.equal(await rating(again, channel2, "profile"), start + 5, "profile, new socket")
  })

  it("concurrent deltas from two sockets all count", opts, async t => {
    const topic = uniqueTopic()
    const tabs = []
    for(let i = 0; i < 2; i++){
      const client = await connected(t, "bob")
      tabs.push({client, channel: await client.joinOk(topic)})
    }
    const start = await rating(tabs[0].client, tabs[0].channel, "profile")
    const pushes = []
    for(let n = 0; n < 20; n++){
      for(const [i, {client, channel}] of tabs.entries()){ pushes.push(rating(client, channel, "rate", {delta: i + 1})) }
    }
    await Promise.all(pushes)
    tabs[1].client.equal(await rating(tabs[1].client, tabs[1].channel, "profile"), start + 20 * 3, "profile after 40 deltas")
  })

  it("rate without an integer delta is an error and changes nothing", opts, async t => {
    const alice = await connected(t, "alice")
    const channel = await alice.joinOk(uniqueTopic())
    const start = await rating(alice, channel, "profile")
    for(const payload of [{}, {delta: "5"}, {delta: 1.5}]){
      const {status} = await alice.push(channel, "rate", payload)
      alice.equal(status, "error", `rate ${JSON.stringify(payload)}`)
    }
    alice.equal(await rating(alice, channel, "profile"), start, "profile")
  })
})
