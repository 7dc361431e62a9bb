// The recovery snippet of docs/recovery.md, verbatim: the tests (Node and Chromium) use exactly what the docs tell
// apps to paste. It needs nothing but the unmodified phoenix.js Socket.

// recoverableChannel is socket.channel(topic, params) for a recoverable topic: it remembers the position of the
// last broadcast seen and names it in the params of every rejoin, so the server replays what was missed.
// channel.position() is that position; the join reply's "recovered" says whether the replay is complete.
export function recoverableChannel(socket, topic, params = {}, key = "phx_pos"){
  let pos = null
  const channel = socket.channel(topic, () => (pos ? {...params, since: pos} : {...params}))
  const onMessage = channel.onMessage
  channel.onMessage = function(event, payload, ref, joinRef){
    const reply = event === "phx_reply" && payload && payload.status === "ok" ? payload.response : null
    if(reply && reply[key] && reply.recovered === false){
      pos = reply[key] // nothing (more) to replay: continue from the topic's current position
    } else if(!reply && payload && payload[key] && typeof payload[key].offset === "number"){
      const p = payload[key]
      if(!pos || p.epoch !== pos.epoch || p.offset > pos.offset){ pos = p }
    }
    return onMessage.call(this, event, payload, ref, joinRef)
  }
  channel.position = () => pos
  return channel
}
