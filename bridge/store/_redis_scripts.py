"""The Redis store's Lua scripts: each is one atomic step on one session's keys.

Every key a script touches starts with the session's base, `PREFIX:{SESSION}`, whose hash tag
puts all of a session's keys in one Redis Cluster slot. The base is ARGV[1]; KEYS[1] is the
session's `:meta` hash, so that a cluster client routes the call to the node holding the slot.
Retention follows the memory store's rules exactly (the conformance suite holds every store to
them). Numbers that must keep their digits (times) travel and are kept as the strings Python
wrote; Lua's own number formatting would round them.

Keys of a session (after its base): `session` (its record), `meta` (rev, log_id: the session's generation, new each
time it is created, log_bytes, last_seen),
`vars` (ID -> current version), `names` (name -> ID), `h:ID` and `hm:ID` (a variable's retained
versions and their "bytes time"), `hb` (ID -> history bytes), `log` (the event log, a stream
whose entry IDs are `REVISION-1`), `reads` and `opt` (ID -> reads served, seconds optimized),
`runs` and `running` (its optimization runs, and those in state running), `run:RID` (seq, rec,
vids), `vruns:ID` (a variable's runs, oldest first), `trials:RID`, `lease:ID` (the run holding
the variable, expiring with its lease).
"""

from __future__ import annotations

#: Helpers every write script shares: retention of a variable's history, and runs that no variable keeps.
_COMMON = """
local base = ARGV[1]
local meta = base .. ':meta'
local dropped = {}
local function push(vid, blob, size, at_s, max_count, max_bytes, max_age)
  local h, hm = base .. ':h:' .. vid, base .. ':hm:' .. vid
  local at = tonumber(at_s)
  local n = redis.call('RPUSH', h, blob)
  redis.call('RPUSH', hm, size .. ' ' .. at_s)
  local total = redis.call('HINCRBY', base .. ':hb', vid, size)
  while n > 1 and (n > max_count or total > max_bytes or max_age > 0) do
    local s, t = string.match(redis.call('LINDEX', hm, 0), '^(%S+) (%S+)$')
    s, t = tonumber(s), tonumber(t)
    if n <= max_count and total <= max_bytes and not (max_age > 0 and t < at - max_age) then break end
    redis.call('LPOP', h)
    redis.call('LPOP', hm)
    total = total - s
    n = n - 1
  end
  redis.call('HSET', base .. ':hb', vid, total)
end
local function drop_run(rid)
  local run = base .. ':run:' .. rid
  local vids = redis.call('HGET', run, 'vids')
  if vids then
    for _, v in ipairs(cjson.decode(vids)) do
      redis.call('LREM', base .. ':vruns:' .. v, 0, rid)
      local lease = base .. ':lease:' .. v
      if redis.call('GET', lease) == rid then redis.call('DEL', lease) end
    end
  end
  redis.call('DEL', run, base .. ':trials:' .. rid)
  redis.call('SREM', base .. ':runs', rid)
  redis.call('SREM', base .. ':running', rid)
  dropped[#dropped + 1] = rid
end
local function release_run(rid)
  local vids = redis.call('HGET', base .. ':run:' .. rid, 'vids')
  if vids then
    for _, v in ipairs(cjson.decode(vids)) do
      if redis.call('LPOS', base .. ':vruns:' .. v, rid) then return end
    end
  end
  drop_run(rid)
end
local function forget(vid)
  redis.call('DEL', base .. ':h:' .. vid, base .. ':hm:' .. vid, base .. ':lease:' .. vid)
  redis.call('HDEL', base .. ':hb', vid)
  redis.call('HDEL', base .. ':reads', vid)
  redis.call('HDEL', base .. ':opt', vid)
  local vruns = base .. ':vruns:' .. vid
  local rids = redis.call('LRANGE', vruns, 0, -1)
  redis.call('DEL', vruns)
  for _, rid in ipairs(rids) do release_run(rid) end
end
"""

#: ARGV: base, the session's generation (its log_id) the caller read at, then one string of frames
#: (`_redis_codec.dump_frames`, one argument: redis-py packs each argument in Python): the expected
#: revision, now, the entry's log cost, its changes (frames), max log entries, max log bytes, max
#: history count, max history bytes, max history age, then per staged variable: op (p put, r restore,
#: d delete), ID, name, version blob, its bytes, its time, how many restored earlier versions, and
#: (blob, bytes, time) for each. Returns {1, revision, dropped runs...}, {0} if the session is gone,
#: {-1, revision} if another write (or another generation) came first, {-2, name} if a restore finds
#: its variable exists.
COMMIT = (
    _COMMON
    + """
local function frames(s)
  local n, pos = struct.unpack('<I4', s, 1)
  local lengths = {}
  for i = 1, n do lengths[i], pos = struct.unpack('<i4', s, pos) end
  local out = {}
  for i = 1, n do
    local len = lengths[i]
    if len < 0 then
      out[i] = false
    else
      out[i] = string.sub(s, pos, pos + len - 1)
      pos = pos + len
    end
  end
  return out
end
if redis.call('EXISTS', base .. ':session') == 0 then return {0} end
local a = frames(ARGV[3])
local state = redis.call('HMGET', meta, 'rev', 'log_id')
local rev = tonumber(state[1] or '0')
if rev ~= tonumber(a[1]) or state[2] ~= ARGV[2] then return {-1, rev} end
local now, cost, changes = a[2], a[3], a[4]
local max_entries, max_log_bytes = tonumber(a[5]), tonumber(a[6])
local max_count, max_bytes, max_age = tonumber(a[7]), tonumber(a[8]), tonumber(a[9])
local vars, names = base .. ':vars', base .. ':names'
local items = {}
local i = 10
while i <= #a do
  local item = {op = a[i], vid = a[i + 1], name = a[i + 2], blob = a[i + 3],
                size = tonumber(a[i + 4]), at = a[i + 5], restored = {}}
  local n = tonumber(a[i + 6])
  i = i + 7
  for j = 1, n do
    item.restored[j] = {a[i], tonumber(a[i + 1]), a[i + 2]}
    i = i + 3
  end
  if item.op == 'r' and redis.call('HEXISTS', vars, item.vid) == 1 then return {-2, item.name} end
  items[#items + 1] = item
end
for _, item in ipairs(items) do
  if item.op == 'd' then
    redis.call('HDEL', vars, item.vid)
    redis.call('HDEL', names, item.name)
    forget(item.vid)
  else
    for _, e in ipairs(item.restored) do push(item.vid, e[1], e[2], e[3], max_count, max_bytes, max_age) end
    redis.call('HSET', vars, item.vid, item.blob)
    redis.call('HSET', names, item.name, item.vid)
    push(item.vid, item.blob, item.size, item.at, max_count, max_bytes, max_age)
  end
end
rev = rev + 1
local log = base .. ':log'
redis.call('XADD', log, rev .. '-1', 'n', cost, 'h', redis.call('HGET', meta, 'log_id'), 't', now, 'c', changes)
local bytes = tonumber(redis.call('HGET', meta, 'log_bytes') or '0') + tonumber(cost)
local len = redis.call('XLEN', log)
while len > 1 and (len > max_entries or bytes > max_log_bytes) do
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  bytes = bytes - tonumber(first[2][2])
  redis.call('XDEL', log, first[1])
  len = len - 1
end
redis.call('HSET', meta, 'rev', rev, 'log_bytes', bytes)
return {1, rev, unpack(dropped)}
"""
)

#: ARGV: base, session record, its generation (history ID), its last activity. 1 if created, 0 if the ID is taken.
CREATE_SESSION = """
local base = ARGV[1]
if redis.call('EXISTS', base .. ':session') == 1 then return 0 end
redis.call('DEL', base .. ':log')
redis.call('SET', base .. ':session', ARGV[2])
redis.call('HSET', base .. ':meta', 'rev', 0, 'log_id', ARGV[3], 'log_bytes', 0, 'last_seen', ARGV[4])
return 1
"""

#: ARGV: base. {session record, last activity, generation}, all nil for an unknown session.
GET_SESSION = """
local state = redis.call('HMGET', ARGV[1] .. ':meta', 'last_seen', 'log_id')
return {redis.call('GET', ARGV[1] .. ':session'), state[1], state[2]}
"""

#: ARGV: base, generation, last activity. Records activity of that generation of the session only: a session
#: re-created meanwhile (another generation) is left alone.
TOUCH_SESSION = """
if redis.call('HGET', ARGV[1] .. ':meta', 'log_id') == ARGV[2] then
  redis.call('HSET', ARGV[1] .. ':meta', 'last_seen', ARGV[3])
end
return 1
"""

#: ARGV: base, how long the end marker stays (ms). Deletes every key of the session and leaves its log
#: one entry, `end`, which wakes the stream readers of other servers. Returns false if it was not there,
#: else {variable IDs, run IDs}.
DELETE_SESSION = """
local base = ARGV[1]
if redis.call('EXISTS', base .. ':session') == 0 then return false end
local vids = redis.call('HKEYS', base .. ':vars')
for _, vid in ipairs(vids) do
  redis.call('DEL', base .. ':h:' .. vid, base .. ':hm:' .. vid, base .. ':vruns:' .. vid, base .. ':lease:' .. vid)
end
local rids = redis.call('SMEMBERS', base .. ':runs')
for _, rid in ipairs(rids) do
  local vids_json = redis.call('HGET', base .. ':run:' .. rid, 'vids')
  if vids_json then
    for _, v in ipairs(cjson.decode(vids_json)) do
      redis.call('DEL', base .. ':vruns:' .. v, base .. ':lease:' .. v)
    end
  end
  redis.call('DEL', base .. ':run:' .. rid, base .. ':trials:' .. rid)
end
for _, key in ipairs({'session', 'meta', 'vars', 'names', 'hb', 'reads', 'opt', 'runs', 'running', 'log'}) do
  redis.call('DEL', base .. ':' .. key)
end
redis.call('XADD', base .. ':log', '*', 'end', '1')
redis.call('PEXPIRE', base .. ':log', ARGV[2])
return {vids, rids}
"""

#: ARGV: base, refs (names or IDs). {revision, generation, each ref's version or nil}.
GET_VARIABLES = """
local base = ARGV[1]
local names, vars = base .. ':names', base .. ':vars'
local state = redis.call('HMGET', base .. ':meta', 'rev', 'log_id')
local out = {state[1], state[2]}
for i = 2, #ARGV do
  local vid = redis.call('HGET', names, ARGV[i]) or ARGV[i]
  out[i + 1] = redis.call('HGET', vars, vid)
end
return out
"""

#: ARGV: base, variable IDs. {revision, generation, variable count, 1/0 for each ID: whether it exists}.
COUNT_VARIABLES = """
local base = ARGV[1]
local state = redis.call('HMGET', base .. ':meta', 'rev', 'log_id')
local out = {state[1], state[2], redis.call('HLEN', base .. ':vars')}
for i = 2, #ARGV do out[#out + 1] = redis.call('HEXISTS', base .. ':vars', ARGV[i]) end
return out
"""

#: ARGV: base. {revision, generation, every current version}.
ALL_VARIABLES = """
local state = redis.call('HMGET', ARGV[1] .. ':meta', 'rev', 'log_id')
return {state[1], state[2], redis.call('HVALS', ARGV[1] .. ':vars')}
"""

#: ARGV: base, the revision the caller read the variables at, variable IDs. {0} if the session is gone, {-1}
#: if it moved on,
#: else {1, per ID {its retained versions, its run IDs}, per distinct run {run ID, record, trials}}.
EXPORT_HISTORY = """
local base = ARGV[1]
local rev = redis.call('HGET', base .. ':meta', 'rev')
if not rev then return {0} end
if rev ~= ARGV[2] then return {-1} end
local per_variable, runs, seen = {}, {}, {}
for i = 3, #ARGV do
  local vid = ARGV[i]
  local rids = redis.call('LRANGE', base .. ':vruns:' .. vid, 0, -1)
  per_variable[#per_variable + 1] = {redis.call('LRANGE', base .. ':h:' .. vid, 0, -1), rids}
  for _, rid in ipairs(rids) do
    if not seen[rid] then
      seen[rid] = true
      runs[#runs + 1] = {rid, redis.call('HGET', base .. ':run:' .. rid, 'rec'),
                         redis.call('LRANGE', base .. ':trials:' .. rid, 0, -1)}
    end
  end
end
return {1, per_variable, runs}
"""

#: ARGV: base, from revision, limit. {} for an unknown session, else {history ID, revision, oldest
#: entry ID or nil, entries}.
EVENT_LOG = """
local base = ARGV[1]
local meta = redis.call('HMGET', base .. ':meta', 'log_id', 'rev')
if not meta[1] then return {} end
local log = base .. ':log'
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
local entries = {}
if tonumber(ARGV[3]) > 0 then entries = redis.call('XRANGE', log, ARGV[2] .. '-0', '+', 'COUNT', ARGV[3]) end
return {meta[1], meta[2], first and first[1] or false, entries}
"""

#: ARGV: base, variable ID, how many, how many newest to skip. The retained versions asked for, oldest first.
HISTORY = """
local n, skip = tonumber(ARGV[3]), tonumber(ARGV[4])
return redis.call('LRANGE', ARGV[1] .. ':h:' .. ARGV[2], -(skip + n), -(skip + 1))
"""

#: ARGV: base, (variable ID, reads)... Counts reads of variables that still exist.
COUNT_READS = """
local base = ARGV[1]
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', base .. ':vars', ARGV[i]) == 1 then
    redis.call('HINCRBY', base .. ':reads', ARGV[i], ARGV[i + 1])
  end
end
return 1
"""

#: ARGV: base, variable ID. {reads, seconds optimized, its current run's record, its current version}.
STATS = """
local base, vid = ARGV[1], ARGV[2]
local current = redis.call('LINDEX', base .. ':vruns:' .. vid, -1)
return {redis.call('HGET', base .. ':reads', vid), redis.call('HGET', base .. ':opt', vid),
        current and redis.call('HGET', base .. ':run:' .. current, 'rec') or false,
        redis.call('HGET', base .. ':vars', vid)}
"""

#: ARGV: base, run ID, now (ms), record, its variable IDs (JSON), lease end (ms), max runs per variable,
#: its variable IDs. {0, holder's record, 1 if this run was stored before} if a variable's current run holds a
#: live lease, {2} if the session is gone, else {1, dropped runs...}.
CLAIM_RUN = (
    _COMMON
    + """
local rid, now_ms = ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', base .. ':session') == 0 then return {2} end
local existed = redis.call('EXISTS', base .. ':run:' .. rid)
for i = 8, #ARGV do
  local current = redis.call('LINDEX', base .. ':vruns:' .. ARGV[i], -1)
  if current then
    local lease = base .. ':lease:' .. ARGV[i]
    if redis.call('GET', lease) == current and redis.call('PEXPIRETIME', lease) >= now_ms then
      return {0, redis.call('HGET', base .. ':run:' .. current, 'rec'), existed}
    end
  end
end
local run = base .. ':run:' .. rid
redis.call('HINCRBY', run, 'seq', 1)
redis.call('HSET', run, 'rec', ARGV[4], 'vids', ARGV[5])
redis.call('SADD', base .. ':runs', rid)
redis.call('SADD', base .. ':running', rid)
local max_runs = tonumber(ARGV[7])
for i = 8, #ARGV do
  local vruns = base .. ':vruns:' .. ARGV[i]
  redis.call('LREM', vruns, 0, rid)
  local n = redis.call('RPUSH', vruns, rid)
  redis.call('SET', base .. ':lease:' .. ARGV[i], rid, 'PXAT', ARGV[6])
  while n > max_runs do
    release_run(redis.call('LPOP', vruns))
    n = n - 1
  end
end
return {1, unpack(dropped)}
"""
)

#: ARGV: base, run ID, the seq the change was made from, the new record, 1 if it is running, its lease
#: end (ms), seconds to add to its variables' optimization time ('' for none), its variable IDs.
#: -1 if the run is not stored, 0 if another change came first, 1 once stored.
UPDATE_RUN = """
local base, rid = ARGV[1], ARGV[2]
local run = base .. ':run:' .. rid
local seq = redis.call('HGET', run, 'seq')
if not seq then return -1 end
if seq ~= ARGV[3] then return 0 end
redis.call('HSET', run, 'rec', ARGV[4], 'seq', tonumber(seq) + 1)
local running = ARGV[5] == '1'
for i = 8, #ARGV do
  local lease = base .. ':lease:' .. ARGV[i]
  if running then
    if redis.call('LINDEX', base .. ':vruns:' .. ARGV[i], -1) == rid then
      redis.call('SET', lease, rid, 'PXAT', ARGV[6])
    end
  elseif redis.call('GET', lease) == rid then
    redis.call('DEL', lease)
  end
  if ARGV[7] ~= '' and redis.call('HEXISTS', base .. ':vars', ARGV[i]) == 1 then
    redis.call('HINCRBYFLOAT', base .. ':opt', ARGV[i], ARGV[7])
  end
end
if running then redis.call('SADD', base .. ':running', rid) else redis.call('SREM', base .. ':running', rid) end
return 1
"""

#: ARGV: base, run ID. {seq, record} (nil, nil when not stored).
GET_RUN = """
return redis.call('HMGET', ARGV[1] .. ':run:' .. ARGV[2], 'seq', 'rec')
"""

#: ARGV: base, variable ID. Its retained runs' records, oldest first.
VARIABLE_RUNS = """
local out = {}
for _, rid in ipairs(redis.call('LRANGE', ARGV[1] .. ':vruns:' .. ARGV[2], 0, -1)) do
  out[#out + 1] = redis.call('HGET', ARGV[1] .. ':run:' .. rid, 'rec')
end
return out
"""

#: ARGV: base. The records of the session's runs in state running.
RUNNING_RUNS = """
local out = {}
for _, rid in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':running')) do
  out[#out + 1] = redis.call('HGET', ARGV[1] .. ':run:' .. rid, 'rec')
end
return out
"""

#: ARGV: base, run ID, trial. Appends it if the run is stored.
ADD_TRIAL = """
if redis.call('EXISTS', ARGV[1] .. ':run:' .. ARGV[2]) == 1 then
  redis.call('RPUSH', ARGV[1] .. ':trials:' .. ARGV[2], ARGV[3])
end
return 1
"""

#: ARGV: base, run ID. Its trials, oldest first.
TRIALS = """
return redis.call('LRANGE', ARGV[1] .. ':trials:' .. ARGV[2], 0, -1)
"""
