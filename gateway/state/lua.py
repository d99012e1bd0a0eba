"""Lua scripts: every multi-key write to Redis is one of these, so it happens whole or not at all.

Every key a script touches is declared in KEYS, except the notification hashes LEASE builds
from its shard's prefix: those carry the due set's hash tag, so on a Redis Cluster each script
runs on one slot (gateway/state/keys.py). On a cluster the store passes the notification's own
key for every tenant-level key (an index, the idempotency key, the policy snapshot): a KEYS[i]
equal to KEYS[1] means "none", and the store does that part outside the script.
"""

# KEYS: notification, idempotency, correlation, due, policy, phone index (= notification key when none),
#       the shard's metrics (the intents-accepted counter is bumped here, not in a second round trip)
# ARGV: id, body_hash ('' = no idempotency key), due_ms, policy_json ('' = assume stored),
#       policy_ttl_s, idem_ttl_s, corr_ttl_s, counter field, field, value, ...
# A notification that exists already answers 'exists' (on a cluster: a retry with the id an
# Idempotency-Key reserved, gateway/state/store.py).
CREATE = """
if ARGV[2] ~= '' and KEYS[2] ~= KEYS[1] then
  local prior = redis.call('GET', KEYS[2])
  if prior then return {'exists', prior} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[1] .. ' ' .. ARGV[2]} end
if KEYS[5] ~= KEYS[1] and redis.call('EXPIRE', KEYS[5], ARGV[5]) == 0 then
  if ARGV[4] == '' then return {'need_policy'} end
  redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[5])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
if ARGV[2] ~= '' and KEYS[2] ~= KEYS[1] then
  redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[6])
end
if KEYS[3] ~= KEYS[1] then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
if KEYS[6] ~= KEYS[1] then
  redis.call('SADD', KEYS[6], ARGV[1])
  redis.call('EXPIRE', KEYS[6], ARGV[7])
end
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[7], ARGV[8], 1)
return {'created'}
"""

# Lease a shard's due notifications: push their due time `lease_ms` ahead (so a crashed
# worker's work comes back) and bump each one's fence token.
# KEYS: the shard's due set; ARGV: now_ms, limit, lease_ms, the shard's notification key prefix
LEASE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #items, 2 do
  local id = items[i]
  local key = ARGV[4] .. id
  if redis.call('HGET', key, 'status') == 'active' then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), id)
    out[#out + 1] = id
    out[#out + 1] = items[i + 1]
    out[#out + 1] = redis.call('HINCRBY', key, 'token', 1)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# Write fields only while the caller holds the current fence and the notification is active.
# KEYS: notification; ARGV: token, field, value, ...
FENCED_SET = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'active' then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""

# A send's hand-over to its provider starts: allowed only while the caller holds the current fence and
# the notification is active; marks which attempt is being handed over, and since when (a stop is
# acknowledged once it is over). KEYS: notification; ARGV: token, attempt key, now_ms
HANDOVER = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'status') ~= 'active' then
  return 0
end
redis.call('HSET', KEYS[1], 'handover', ARGV[2] .. ' ' .. ARGV[3])
return 1
"""

# Record a send's result: allowed for the worker that claimed the attempt, even if
# the notification stopped since (the message was already handed over); ends the attempt's hand-over.
# A provider receipt that arrived before this record (delivered/failed) is not overwritten by "sent".
# KEYS: notification, log, provider index ('' key = none)
# ARGV: field, claim_token, value, log_entry ('' = none), refused_from (',sent,delivered,': statuses the
# attempt may not leave for the new one, rules/status.py), index_value, ttl_s
RECORD = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
local decoded = cjson.decode(current)
if tostring(decoded['claim']) ~= ARGV[2] then return 0 end
local handing = redis.call('HGET', KEYS[1], 'handover')
if handing and string.match(handing, '^%S+') == string.sub(ARGV[1], 3) then redis.call('HDEL', KEYS[1], 'handover') end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[7]) end
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[4]) end
if string.find(ARGV[5], ',' .. decoded['status'] .. ',', 1, true) then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# A provider receipt: compare-and-set one attempt; a failure makes the notification due
# now so a worker runs its fallback. KEYS: notification, due, log
# ARGV: id, field, expected_value, new_value, now_ms, make_due ('1'/'0'), log_entry ('' = none)
RECEIPT = """
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
if ARGV[7] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[7]) end
if ARGV[6] == '1' and redis.call('HGET', KEYS[1], 'status') == 'active' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  redis.call('HSET', KEYS[1], 'due', ARGV[5])
end
return 1
"""

# An ended notification leaves the indexes and its keys get the retention TTL.
# KEYS (the "family"): notification, due, correlation, log, outbox_sent, phone index
_RELEASE = """
local function RELEASE(id, ttl)
  if KEYS[3] ~= KEYS[1] then redis.call('SREM', KEYS[3], id) end
  if KEYS[6] ~= KEYS[1] then redis.call('SREM', KEYS[6], id) end
  for _, i in ipairs({1, 4, 5}) do redis.call('EXPIRE', KEYS[i], ttl) end
end
"""

# Schedule the next look, or finish. KEYS: the family, then the policy snapshot
# ARGV: id, token, next_due_ms ('' = none), final_status ('' = still active), final_at, reason,
#       retention_s, index_ttl_s, policy_ttl_s
ADVANCE = (
    _RELEASE
    + """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'status') ~= 'active' then
  return 0
end
if ARGV[4] == '' then
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'due', ARGV[3])
  -- still running: its indexes and policy snapshot must outlive its next step
  for _, i in ipairs({3, 6}) do
    if KEYS[i] ~= KEYS[1] then redis.call('EXPIRE', KEYS[i], ARGV[8], 'GT') end
  end
  if KEYS[7] ~= KEYS[1] then redis.call('EXPIRE', KEYS[7], ARGV[9], 'GT') end
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'final_at', ARGV[5], 'final_reason', ARGV[6], 'due', '')
redis.call('ZREM', KEYS[2], ARGV[1])
RELEASE(ARGV[1], ARGV[7])
return 1
"""
)

# A response or cancel; a stop is counted in the shard's metrics hash as it happens.
# KEYS: the family, then the shard's metrics hash; ARGV: id, tenant, type, event_json, final_at, retention_s, metric_field
STOP = (
    _RELEASE
    + """
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[2] then return 'missing' end
local n = redis.call('HINCRBY', KEYS[1], 'events', 1)
redis.call('HSET', KEYS[1], 'e:' .. n, ARGV[4])
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return 'inactive' end
local stops = redis.call('HGET', KEYS[1], 'stops')
if not string.find(stops, ',' .. ARGV[3] .. ',', 1, true) then return 'recorded' end
redis.call('HSET', KEYS[1], 'status', 'stopped', 'final_at', ARGV[5], 'final_reason', ARGV[3], 'due', '')
redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('ZREM', KEYS[2], ARGV[1])
RELEASE(ARGV[1], ARGV[6])
redis.call('HINCRBY', KEYS[7], ARGV[7], 1)
return 'stopped'
"""
)

# The outbox provider: accept a message only under the current fence, and only once
# per attempt. KEYS: notification, outbox, outbox_sent; ARGV: token, attempt_key, message, keep, ttl_s
OUTBOX = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 'stale' end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then return 'duplicate' end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 'sent'
"""

# A fixed-window rate-limit counter (gateway/http/ratelimit.py): the window starts with the first hit.
# KEYS: counter  ARGV: amount, window_s
RATE_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return v
"""
