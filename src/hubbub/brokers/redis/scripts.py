"""The Lua scripts: each step that must be atomic in Redis is one script.

They touch only the keys of one room (passed in KEYS, all with the room's hash tag), so a
Redis Cluster could run them.
"""

from __future__ import annotations

PUBLISH = """
-- KEYS: meta, log, channel, then the id keys of the messages whose publisher chose an id
-- ARGV: epoch for a new room, dedupe window in ms, then per message: body (JSON), index of
--       its id key in KEYS (0: none), ts
local created = 0
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  created = 1
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local first = top + 1
local bodies = {}
local answers = {}
for i = 3, #ARGV, 3 do
  local body, id_key, ts = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local answer = nil
  if id_key > 0 then
    local seen = redis.call('GET', KEYS[id_key])
    if seen then
      local offset, seen_epoch, seen_ts = string.match(seen, '^(%d+) (%S+) (%d+)$')
      if seen_epoch == epoch then
        local original = redis.call('XRANGE', KEYS[2], '0-' .. offset, '0-' .. offset)
        local original_body = ''
        if #original > 0 then
          original_body = original[1][2][2]
        end
        answer = {tonumber(offset), 1, seen_ts, original_body}
      end
    end
  end
  if not answer then
    top = top + 1
    redis.call('XADD', KEYS[2], '0-' .. top, 'm', body)
    if id_key > 0 then
      redis.call('SET', KEYS[id_key], top .. ' ' .. epoch .. ' ' .. ts, 'PX', ARGV[2])
    end
    bodies[#bodies + 1] = body
    answer = {top, 0, ts, ''}
  end
  answers[#answers + 1] = answer
end
if #bodies > 0 then
  redis.call('HSET', KEYS[1], 'top', top)
  redis.call('PUBLISH', KEYS[3], '{"o":' .. first .. ',"e":"' .. epoch .. '","m":['
             .. table.concat(bodies, ',') .. ']}')
end
return {epoch, answers, created}
"""
"""Publish a run of one room's messages in one step, each: idempotency check on its id ->
epoch -> next offset -> XADD; then one PUBLISH that carries the run (its first offset, the
epoch and the bodies), so that a node reads a busy room's messages a run at a time, not one
by one. A message is stored and announced with its run or not at all. Returns {epoch,
{{offset, duplicate, ts, original body}, ...}, created}: for a duplicate, the original's
place, time and body (empty if retention removed it); `created` when the run started the
room (its name then goes into the room set)."""

STATE = """
-- KEYS: meta, log; ARGV: epoch to start the room with if Redis does not know it, or ""
local created = 0
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  if ARGV[1] == '' then
    return false
  end
  epoch = ARGV[1]
  created = 1
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_offset = top + 1
if #first > 0 then
  first_offset = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
end
return {epoch, top, first_offset, created}
"""
"""A room's state: {epoch, top, first offset, created}. A room Redis does not know is nil, or is
started (a new epoch, no message) when an epoch is given."""

DISCARD = """
-- KEYS: meta, members; ARGV: rooms key, room
if redis.call('HGET', KEYS[1], 'top') == '0' and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
"""Forget a room that never had a message and has no member on any node."""

SWEEP = """
-- KEYS: members, info, channel; ARGV: now in ms
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  local member = redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[2], id)
  if member then
    redis.call('PUBLISH', KEYS[3], '{"p":"leave","node":"","member":' .. member .. '}')
  end
end
return #gone
"""
"""Remove the members whose node stopped refreshing them, and tell every node in the room:
one script, so that each expired member gets exactly one `leave`, whichever nodes sweep."""
