package sidekiqmove

import "github.com/redis/go-redis/v9"

// Every change the mover makes is one of these scripts. Redis runs a script
// to the end without interleaving other commands, and a client that dies
// mid-call either got the whole script run or none of it, so each job is
// either still where it was or already where it goes: never both, never
// neither.

// listWindow reads the next window of a queue list, scanning from the tail
// (the oldest jobs, which Sidekiq pops first) towards the head (where
// clients push). It finds where the previous window ended by its anchor,
// the last job examined and left in place: the anchor is usually exactly
// ARGV[2] elements from the tail; when consumers popped jobs in between, it
// is looked up; when it was popped itself, everything older was popped too
// and the scan restarts at the tail.
//
// KEYS[1] the list. ARGV[1] the anchor payload ("" for none), ARGV[2] its
// expected 1-based position from the tail, ARGV[3] the window size.
// Returns {stop, items}: stop is the negative index of the window's last
// (oldest) item, and items are in list order (newest first).
var listWindow = redis.NewScript(`
local stop = -1
if ARGV[1] ~= '' then
  local k = tonumber(ARGV[2])
  if redis.call('LINDEX', KEYS[1], -k) == ARGV[1] then
    stop = -k - 1
  else
    local pos = redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1)
    if pos then
      stop = pos - redis.call('LLEN', KEYS[1]) - 1
    end
  end
end
local n = tonumber(ARGV[3])
return {stop, redis.call('LRANGE', KEYS[1], stop - n + 1, stop)}
`)

// moveListJobs moves jobs from one queue list to others, each only if it is
// still in the source, and pushes the rewritten payload to its target with
// LPUSH, as a Sidekiq client pushes; the target queue names are added to
// the "queues" set, as a client does. A job is found at the index the
// window read it from (LINDEX), unless consumers popped jobs since, and is
// then searched from the tail (LREM). Found jobs are first overwritten with
// a tombstone and all removed by one LREM at the end, which scans the list
// once per batch instead of once per job. No tombstone outlives the script.
//
// KEYS[1] the source list, KEYS[2] the queues set, KEYS[3..] the target
// lists. ARGV[1] the number of jobs n, ARGV[2] the tombstone, then n
// quadruples (index of the target in KEYS, expected negative index in the
// source, old payload, new payload), oldest job first, then the target
// queue names in the order of KEYS[3..]. Returns one flag per job: 1 moved,
// 0 gone (a consumer took it first).
var moveListJobs = redis.NewScript(`
local n = tonumber(ARGV[1])
local tomb = ARGV[2]
local names = 3 + 4 * n
local used = {}
local result = {}
local marked = 0
for i = 0, n - 1 do
  local t = tonumber(ARGV[3 + 4 * i])
  local at = tonumber(ARGV[4 + 4 * i])
  local old = ARGV[5 + 4 * i]
  local found = false
  if redis.call('LINDEX', KEYS[1], at) == old then
    redis.call('LSET', KEYS[1], at, tomb)
    marked = marked + 1
    found = true
  elseif redis.call('LREM', KEYS[1], -1, old) == 1 then
    found = true
  end
  if found then
    redis.call('LPUSH', KEYS[t], ARGV[6 + 4 * i])
    used[t] = true
    result[i + 1] = 1
  else
    result[i + 1] = 0
  end
end
if marked > 0 then
  redis.call('LREM', KEYS[1], -marked, tomb)
end
for t in pairs(used) do
  redis.call('SADD', KEYS[2], ARGV[names + t - 3])
end
return result
`)

// moveSetJobs rewrites members of a sorted set (schedule, retry, dead):
// each old member still present is replaced by its new payload with the
// same score, unless the new payload is already a member (which would merge
// two jobs into one).
//
// KEYS[1] the set. ARGV pairs (old member, new member). Returns one flag per
// pair: 1 moved, 0 gone (the poller enqueued it, or it was deleted), 2
// conflict (left in place).
var moveSetJobs = redis.NewScript(`
local result = {}
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not score then
    result[#result + 1] = 0
  elseif redis.call('ZSCORE', KEYS[1], ARGV[i + 1]) then
    result[#result + 1] = 2
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[1], score, ARGV[i + 1])
    result[#result + 1] = 1
  end
end
return result
`)
