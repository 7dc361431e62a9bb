// The lobby game driven by the unmodified phoenix.js 1.8 client, as the page does it: log in, join
// the lobby with a Presence, challenge, play, report, and see the ratings change everywhere.
//
// Environment: LOBBY_URL, the lobby's HTTP base URL (e.g. http://127.0.0.1:4000), on a fresh
// database (the test expects the seeded ratings). lobby_test.go starts the server and runs this.
import assert from "node:assert/strict"
import {createRequire} from "node:module"
import {describe, it} from "node:test"

// phoenix.js and ws come from the conformance suite's npm install, so the lobby needs none.
const require = createRequire(import.meta.url)
const {Socket, Presence} = require("../../conformance/js/node_modules/phoenix18")
const {WebSocket} = require("../../conformance/js/node_modules/ws")

const base = process.env.LOBBY_URL
if(!base){ throw new Error("LOBBY_URL must be set, e.g. http://127.0.0.1:4000") }
const socketURL = base.replace(/^http/, "ws") + "/socket"
const opts = {timeout: 15000}

/** Resolves once predicate() holds, polling every 10 ms; rejects with what after ms. */
function until(what, predicate, ms = 3000){
  return new Promise((resolve, reject) => {
    const start = Date.now()
    const poll = setInterval(() => {
      let err = null
      try { if(predicate()){ clearInterval(poll); resolve(); return } } catch(e){ err = e }
      if(err || Date.now() - start > ms){ clearInterval(poll); reject(err || new Error(`timed out waiting for ${what}`)) }
    }, 10)
  })
}

/** Resolves with {status, response} of a push (join or event). */
function reply(push){
  return new Promise(resolve => {
    for(const status of ["ok", "error", "timeout"]){ push.receive(status, response => resolve({status, response})) }
  })
}

/** POST /login as the page's form does; resolves with {token, player}. */
async function login(username){
  const res = await fetch(`${base}/login`, {method: "POST", body: new URLSearchParams({username})})
  assert.equal(res.status, 200, `login ${username}: ${await res.clone().text()}`)
  return res.json()
}

/** A logged-in player in the lobby, with its Presence and the events it received. */
async function player(t, username){
  const {token} = await login(username)
  const socket = new Socket(socketURL, {transport: WebSocket, params: {token}, timeout: 3000})
  t.after(() => new Promise(resolve => socket.disconnect(resolve)))
  socket.connect()
  const lobby = socket.channel("lobby", {})
  const presence = new Presence(lobby)
  const events = {started: [], ratings: []}
  lobby.on("game_started", p => events.started.push(p))
  lobby.on("ratings", p => events.ratings.push(p))
  const {status, response} = await reply(lobby.join())
  assert.equal(status, "ok", `${username} joins the lobby: ${JSON.stringify(response)}`)
  assert.equal(response.player.username, username)
  return {username, socket, lobby, presence, events, me: response.player}
}

/** The lobby as the page renders it: "name:rating" sorted, one entry per player. */
function online(p){
  return p.presence.list((name, {metas}) => `${name}:${metas[metas.length - 1].rating}`).sort().join(" ")
}

describe("lobby game", () => {
  it("login, presence, challenge, report: Elo ratings reach the game, the lobby and new snapshots", opts, async t => {
    const alice = await player(t, "alice")
    const bob = await player(t, "bob")
    assert.deepEqual([alice.me.rating, bob.me.rating], [1500, 1400], "seeded ratings")
    await until("both in the lobby", () => online(alice) === "alice:1500 bob:1400" && online(bob) === online(alice))

    const challenge = await reply(alice.lobby.push("challenge", {opponent: "bob"}))
    assert.equal(challenge.status, "ok", JSON.stringify(challenge.response))
    const topic = challenge.response.game
    await until("game_started at bob", () => bob.events.started.length === 1)
    assert.deepEqual(bob.events.started[0], {game: topic, players: ["alice", "bob"]})

    // Both pages join the game on game_started.
    const games = {}
    for(const p of [alice, bob]){
      const channel = p.socket.channel(topic, {})
      const got = []
      channel.on("ratings", r => got.push(r))
      const {status, response} = await reply(channel.join())
      assert.equal(status, "ok", `${p.username} joins ${topic}`)
      assert.deepEqual(response.players.map(q => `${q.username}:${q.rating}`), ["alice:1500", "bob:1400"])
      games[p.username] = {channel, got}
    }

    // Elo with K=32: expected score of 1500 against 1400 is 0.64, so the winner gets 12 points.
    const expected = 1 / (1 + 10 ** ((1400 - 1500) / 400))
    const delta = Math.round(32 * (1 - expected))
    const want = {game: topic, winner: "alice", ratings: {alice: 1500 + delta, bob: 1400 - delta}}
    const report = await reply(games.bob.channel.push("report", {winner: "alice"}))
    assert.deepEqual(report, {status: "ok", response: want}, "bob reports alice's win")

    await until("ratings on the game and the lobby", () =>
      games.alice.got.length === 1 && games.bob.got.length === 1 &&
      alice.events.ratings.length === 1 && bob.events.ratings.length === 1)
    for(const r of [games.alice.got[0], games.bob.got[0], alice.events.ratings[0], bob.events.ratings[0]]){
      assert.deepEqual(r, want)
    }
    // Presence metas follow the ratings, so the rendered lobby is current.
    await until("new ratings in the lobby", () => online(alice) === `alice:${1500 + delta} bob:${1400 - delta}` &&
      online(bob) === online(alice))

    const again = await reply(games.alice.channel.push("report", {winner: "bob"}))
    assert.equal(again.status, "error", "a game is rated once")

    // The old sockets keep their connect-time snapshot; a new login connects with the new rating.
    const carol = await player(t, "carol")
    await until("carol sees the new ratings", () => online(carol) === `alice:${1500 + delta} bob:${1400 - delta} carol:1600`)
    const bob2 = await player(t, "bob")
    assert.equal(bob2.me.rating, 1400 - delta, "bob's new snapshot")
    await until("bob's two tabs are one entry", () => bob2.presence.list((name, {metas}) => `${name}:${metas.length}`).includes("bob:2"))

    // Only the game's players may join it.
    const spy = await reply(carol.socket.channel(topic, {}).join())
    assert.equal(spy.status, "error", "carol joins a game she does not play in")
  })

  it("a forged token is refused", opts, async t => {
    const socket = new Socket(socketURL, {transport: WebSocket, params: {token: "forged"}, reconnectAfterMs: () => 60000})
    t.after(() => new Promise(resolve => socket.disconnect(resolve)))
    let errors = 0
    let opens = 0
    socket.onError(() => errors++)
    socket.onOpen(() => opens++)
    socket.connect()
    await until("a connection error", () => errors > 0)
    assert.equal(opens, 0)
  })
})
