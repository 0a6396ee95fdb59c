"""The Lua scripts: each step that must be atomic in Redis is one script.

They touch only the keys of one room (passed in KEYS, all with the room's hash tag), so a
Redis Cluster could run them.
"""

from __future__ import annotations

PUBLISH = """
-- KEYS: meta, log, id key (or meta again when the publisher chose no id), channel
-- ARGV: epoch for a new room, message body (JSON), dedupe ("1"/"0"), window in ms, ts
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
if ARGV[3] == '1' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local offset, seen_epoch, ts = string.match(seen, '^(%d+) (%S+) (%d+)$')
    if seen_epoch == epoch then
      return {tonumber(offset), epoch, 1, ts}
    end
  end
end
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('XADD', KEYS[2], '0-' .. top, 'm', ARGV[2])
if ARGV[3] == '1' then
  redis.call('SET', KEYS[3], top .. ' ' .. epoch .. ' ' .. ARGV[5], 'PX', ARGV[4])
end
redis.call('PUBLISH', KEYS[4], '{"o":' .. top .. ',"e":"' .. epoch .. '","m":' .. ARGV[2] .. '}')
return {top, epoch, 0, ''}
"""
"""Idempotency check -> epoch -> next offset -> XADD -> PUBLISH, in one step: a message is
stored and announced at once or not at all. Returns {offset, epoch, duplicate, ts}: for a
duplicate, the original's place and time."""

ENSURE = """
-- KEYS: meta, log; ARGV: epoch for a new room
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_offset = top + 1
if #first > 0 then
  first_offset = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
end
return {epoch, top, first_offset}
"""
"""A room's state, starting the room (a new epoch, no message) if Redis does not know it:
{epoch, top, first offset}."""

STATE = """
-- KEYS: meta, log
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return false
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_offset = top + 1
if #first > 0 then
  first_offset = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
end
return {epoch, top, first_offset}
"""
"""A room's state, or nil for a room Redis does not know."""

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
