-- The account governor (slice_worker::governor): the concurrency slots every run on this store shares, as leases
-- with expiry times; the tasks that find no slot wait in their run's queue and are granted one, best run first,
-- when a slot frees. ARGV[1] is the operation, ARGV[2..] its arguments; every key lives under the {trainer-qos}
-- hash tag (one cluster slot), expires a day after it was last written, and goes when no run and no slot is left.
local P = '{trainer-qos}:'
local DAY = 86400000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

local function touch(key)
  redis.call('PEXPIRE', key, DAY)
end

local function limit()
  return tonumber(redis.call('GET', P .. 'limit') or '0')
end

local function held(run)
  return math.max(0, tonumber(redis.call('HGET', P .. 'held', run) or '0'))
end

local function drop_slot(slot)
  local run = redis.call('HGET', P .. 'owner', slot)
  redis.call('ZREM', P .. 'slots', slot)
  redis.call('HDEL', P .. 'owner', slot)
  if run then
    redis.call('HINCRBY', P .. 'held', run, -1)
  end
end

-- Expired slots (a worker that died holding one) and expired runs (a driver that stopped renewing) are let go.
local function prune()
  for _, slot in ipairs(redis.call('ZRANGEBYSCORE', P .. 'slots', '-inf', now)) do
    drop_slot(slot)
  end
  local runs = redis.call('HGETALL', P .. 'runs')
  for i = 1, #runs, 2 do
    local expiry = tonumber(string.match(runs[i + 1], '%d+ %d+ (%d+)'))
    if expiry < now then
      redis.call('HDEL', P .. 'runs', runs[i])
      redis.call('DEL', P .. 'queue:' .. runs[i], P .. 'granted:' .. runs[i], P .. 'stats:' .. runs[i])
    end
  end
end

-- run -> {class, demand}: class 2 high, 1 normal, 0 low.
local function registered()
  local out = {}
  local runs = redis.call('HGETALL', P .. 'runs')
  for i = 1, #runs, 2 do
    local class, demand = string.match(runs[i + 1], '(%d+) (%d+)')
    out[runs[i]] = { class = tonumber(class), demand = tonumber(demand) }
  end
  return out
end

-- Free slots for a run of `class`: runs below high leave every high run's demand free for it.
local function free_for(class, runs)
  local free = limit() - redis.call('ZCARD', P .. 'slots')
  if class < 2 then
    for run, info in pairs(runs) do
      if info.class == 2 then
        free = free - math.max(0, info.demand - held(run))
      end
    end
  end
  return free
end

-- The waiting run the next slot goes to: the highest class, then the fewest slots held.
local function next_waiting(runs)
  local best, best_class, best_held = nil, -1, 0
  for run, info in pairs(runs) do
    if redis.call('LLEN', P .. 'queue:' .. run) > 0 then
      local h = held(run)
      if info.class > best_class or (info.class == best_class and h < best_held) then
        best, best_class, best_held = run, info.class, h
      end
    end
  end
  return best, best_class, best_held
end

-- Burst smoothing: starts take a token from a bucket that refills at the account's rate (tokens per second, a
-- second's worth at most); no rate set, no limit.
local function take_token()
  local rate = tonumber(redis.call('GET', P .. 'rate') or '0')
  if rate <= 0 then
    return true
  end
  local b = redis.call('HMGET', P .. 'bucket', 'tokens', 'at')
  local tokens = tonumber(b[1] or rate)
  local at = tonumber(b[2] or now)
  tokens = math.min(rate, tokens + (now - at) * rate / 1000)
  local took = tokens >= 1
  if took then
    tokens = tokens - 1
  end
  redis.call('HSET', P .. 'bucket', 'tokens', tostring(tokens), 'at', tostring(now))
  touch(P .. 'bucket')
  return took
end

local function take_slot(run, ttl)
  local slot = tostring(redis.call('INCR', P .. 'next'))
  redis.call('ZADD', P .. 'slots', now + ttl, slot)
  redis.call('HSET', P .. 'owner', slot, run)
  redis.call('HINCRBY', P .. 'held', run, 1)
  for _, k in ipairs({ 'next', 'slots', 'owner', 'held' }) do
    touch(P .. k)
  end
  return slot
end

-- Free slots to waiting tasks, best run first; a granted task waits in its run's granted list (with how long it
-- was queued) until its driver starts it.
local function grant(runs, ttl)
  local n = 0
  while true do
    local run, class = next_waiting(runs)
    if not run or free_for(class, runs) <= 0 or not take_token() then
      break
    end
    local entry = redis.call('LPOP', P .. 'queue:' .. run)
    local since, payload = string.match(entry, '^(%d+)\n(.*)$')
    local slot = take_slot(run, ttl)
    redis.call('RPUSH', P .. 'granted:' .. run, slot .. '\n' .. (now - tonumber(since)) .. '\n' .. payload)
    touch(P .. 'granted:' .. run)
    redis.call('HINCRBY', P .. 'stats:' .. run, 'granted', 1)
    redis.call('HINCRBY', P .. 'stats:' .. run, 'waited_ms', now - tonumber(since))
    n = n + 1
  end
  return n
end

-- An account with no run and no slot keeps nothing.
local function tidy()
  if redis.call('HLEN', P .. 'runs') == 0 and redis.call('ZCARD', P .. 'slots') == 0 then
    redis.call('DEL', P .. 'limit', P .. 'rate', P .. 'bucket', P .. 'next', P .. 'held', P .. 'owner', P .. 'runs',
      P .. 'slots')
  end
end

local function stats(run)
  local s = redis.call('HGETALL', P .. 'stats:' .. run)
  local out = { 'stats' }
  for i = 1, #s do
    out[#out + 1] = s[i]
  end
  return out
end

if op == 'register' then
  -- run class demand ttl_ms limit starts_per_s
  redis.call('HSET', P .. 'runs', ARGV[2], ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. (now + tonumber(ARGV[5])))
  redis.call('SET', P .. 'limit', ARGV[6])
  redis.call('SET', P .. 'rate', ARGV[7])
  touch(P .. 'rate')
  touch(P .. 'runs')
  touch(P .. 'limit')
  prune()
  return { 'ok' }
elseif op == 'admit' then
  -- run slot_ttl_ms payload: a slot now, or the task waits in the run's queue
  prune()
  local runs = registered()
  local run = ARGV[2]
  local me = runs[run]
  if not me then
    return { 'dead' }
  end
  local waiting, wclass, wheld = next_waiting(runs)
  local ahead = waiting and (waiting == run or wclass > me.class or (wclass == me.class and wheld < held(run)))
  if free_for(me.class, runs) > 0 and not ahead and take_token() then
    redis.call('HINCRBY', P .. 'stats:' .. run, 'admitted', 1)
    touch(P .. 'stats:' .. run)
    return { 'slot', take_slot(run, tonumber(ARGV[3])) }
  end
  redis.call('RPUSH', P .. 'queue:' .. run, now .. '\n' .. ARGV[4])
  touch(P .. 'queue:' .. run)
  redis.call('HINCRBY', P .. 'stats:' .. run, 'queued', 1)
  touch(P .. 'stats:' .. run)
  return { 'queued' }
elseif op == 'release' then
  -- slot slot_ttl_ms run: the slot goes back and free slots to whoever waits; what was granted to the releaser's own
  -- run is handed to it to start (no wait for its driver's poll): 'granted', n, then its entries
  drop_slot(ARGV[2])
  prune()
  local n = grant(registered(), tonumber(ARGV[3]))
  local out = { 'granted', tostring(n) }
  for _, g in ipairs(redis.call('LRANGE', P .. 'granted:' .. ARGV[4], 0, -1)) do
    out[#out + 1] = g
  end
  redis.call('DEL', P .. 'granted:' .. ARGV[4])
  tidy()
  return out
elseif op == 'reserve' then
  -- run n slot_ttl_ms: up to n slots now, none queued (a warm pool's probes): 'reserved', then the slots
  prune()
  local runs = registered()
  local me = runs[ARGV[2]]
  if not me then
    return { 'dead' }
  end
  local out = { 'reserved' }
  for _ = 1, tonumber(ARGV[3]) do
    local waiting = next_waiting(runs)
    if free_for(me.class, runs) <= 0 or (waiting and waiting ~= ARGV[2]) or not take_token() then
      break
    end
    out[#out + 1] = take_slot(ARGV[2], tonumber(ARGV[4]))
  end
  return out
elseif op == 'renew' then
  -- slot ttl_ms
  redis.call('ZADD', P .. 'slots', 'XX', now + tonumber(ARGV[3]), ARGV[2])
  return { 'ok' }
elseif op == 'take' then
  -- run slot_ttl_ms run_ttl_ms: the driver's poll — renews the run, grants, hands over its granted tasks and names
  -- its queued ones: 'take', n, n granted entries, then the queued payloads
  local info = redis.call('HGET', P .. 'runs', ARGV[2])
  if not info then
    return { 'dead' }
  end
  local class, demand = string.match(info, '(%d+) (%d+)')
  redis.call('HSET', P .. 'runs', ARGV[2], class .. ' ' .. demand .. ' ' .. (now + tonumber(ARGV[4])))
  touch(P .. 'runs')
  prune()
  grant(registered(), tonumber(ARGV[3]))
  local granted = redis.call('LRANGE', P .. 'granted:' .. ARGV[2], 0, -1)
  redis.call('DEL', P .. 'granted:' .. ARGV[2])
  local out = { 'take', tostring(#granted) }
  for _, g in ipairs(granted) do
    out[#out + 1] = g
  end
  for _, q in ipairs(redis.call('LRANGE', P .. 'queue:' .. ARGV[2], 0, -1)) do
    out[#out + 1] = string.match(q, '^%d+\n(.*)$')
  end
  return out
elseif op == 'unregister' then
  -- run slot_ttl_ms: the run's share goes to whoever waits; its counts are returned, and go
  redis.call('HDEL', P .. 'runs', ARGV[2])
  redis.call('DEL', P .. 'queue:' .. ARGV[2], P .. 'granted:' .. ARGV[2])
  prune()
  grant(registered(), tonumber(ARGV[3]))
  local out = stats(ARGV[2])
  redis.call('DEL', P .. 'stats:' .. ARGV[2])
  tidy()
  return out
elseif op == 'stats' then
  return stats(ARGV[2])
end
return redis.error_reply('governor: unknown operation ' .. tostring(op))
