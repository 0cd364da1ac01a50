-- The mixed workload of `python -m bench.run mixed`, in the style of DeathStarBench's social
-- network: home-feed reads, user-timeline reads and new posts, picked by weight per request.
--
-- wrk ... -s bench/mixed.lua <gateway> -- <users file> <feed %> <timeline %> <post %>
-- The users file has one "<user id> <access token>" line per seeded user. Feed reads use a random
-- user's token, timeline reads a random author, and posts go round-robin over all users (each
-- thread from its own offset) so no user comes near the gateway's per-user write limit.
-- Each request carries X-Request-Id "<kind>-<n>"; the gateway echoes it, so response() counts
-- non-2xx answers and latency per kind (wrk itself only knows the latency of all requests; the
-- send time is kept per request id, read with clock_gettime through LuaJIT's ffi). done() prints
-- one line "MIXED_RESULT {json}" for bench/mixed.py.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local ids, tokens = {}, {}
local weight_feed, weight_timeline = 60, 90
local next_writer, sequence = 1, 0
local kinds = { "feed", "timeline", "post" }
local post_body = '{"title":"Mixed load post","content":"Written under the mixed benchmark load, '
  .. 'a short status update like most posts of a social network.","tags":["bench","mixed"]}'

function init(args)
  local path = args[1]
  local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in file:lines() do
    local id, token = line:match("^(%d+)%s+(%S+)$")
    if id then
      table.insert(ids, id)
      table.insert(tokens, token)
    end
  end
  file:close()
  assert(#ids > 0, "no users in " .. path)
  local feed, timeline = tonumber(args[2] or 60), tonumber(args[3] or 30)
  weight_feed, weight_timeline = feed, feed + timeline
  total_weight = weight_timeline + tonumber(args[4] or 10)
  math.randomseed(os.time() + 7919 * index)
  next_writer = (index * 104729) % #ids + 1
  sent = { feed = 0, timeline = 0, post = 0 }
  bad = { feed = 0, timeline = 0, post = 0, unknown = 0 }
  statuses = {}
  -- Flat global lists, one per kind: wrk's thread:get cannot copy nested tables.
  latency_feed, latency_timeline, latency_post = {}, {}, {}
  latencies = { feed = latency_feed, timeline = latency_timeline, post = latency_post }
  started = {}
end

request = function()
  local pick = math.random() * total_weight
  sequence = sequence + 1
  if pick < weight_feed then
    sent.feed = sent.feed + 1
    local rid = "feed-" .. sequence
    local headers = { ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)], ["X-Request-Id"] = rid }
    started[rid] = now_us()
    return wrk.format("GET", "/api/v1/feed?limit=20", headers)
  elseif pick < weight_timeline then
    sent.timeline = sent.timeline + 1
    local rid = "timeline-" .. sequence
    local headers = { ["X-Request-Id"] = rid }
    started[rid] = now_us()
    return wrk.format("GET", "/api/v1/posts/list?limit=20&author_id=" .. ids[math.random(#ids)], headers)
  else
    sent.post = sent.post + 1
    local rid = "post-" .. sequence
    local headers = {
      ["Authorization"] = "Bearer " .. tokens[next_writer],
      ["Content-Type"] = "application/json",
      ["X-Request-Id"] = rid,
    }
    started[rid] = now_us()
    next_writer = next_writer % #tokens + 1
    return wrk.format("POST", "/api/v1/posts", headers, post_body)
  end
end

response = function(status, headers, body)
  local rid = headers["x-request-id"] or headers["X-Request-Id"] or ""
  local kind = rid:match("^(%a+)-")
  local sent_at = started[rid]
  if sent_at and latencies[kind] then
    started[rid] = nil
    local list = latencies[kind]
    list[#list + 1] = now_us() - sent_at
  end
  if status >= 200 and status < 300 then
    return
  end
  if bad[kind] == nil then
    kind = "unknown"
  end
  bad[kind] = bad[kind] + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function add(into, from)
  for k, v in pairs(from) do
    into[k] = (into[k] or 0) + v
  end
end

local function object(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function percentiles(kind_lists)
  local parts = {}
  for kind, list in pairs(kind_lists) do
    table.sort(list)
    local n = #list
    local function at(pct)
      if n == 0 then
        return 0
      end
      return list[math.min(n, math.floor(n * pct / 100) + 1)]
    end
    table.insert(parts, string.format('"%s":{"n":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}',
      kind, n, at(50), at(90), at(99), n > 0 and list[n] or 0))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_sent, all_bad, all_statuses = {}, {}, {}
  local all_latencies = { feed = {}, timeline = {}, post = {} }
  for _, thread in ipairs(threads) do
    add(all_sent, thread:get("sent"))
    add(all_bad, thread:get("bad"))
    add(all_statuses, thread:get("statuses"))
    for kind, into in pairs(all_latencies) do
      for _, v in ipairs(thread:get("latency_" .. kind)) do
        into[#into + 1] = v
      end
    end
  end
  local e = summary.errors
  io.write(string.format(
    'MIXED_RESULT {"requests":%d,"duration_us":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"non_2xx":%d,'
      .. '"sent":%s,"non_2xx_by_kind":%s,"statuses":%s,"latency_us_by_kind":%s}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status,
    object(all_sent), object(all_bad), object(all_statuses), percentiles(all_latencies)))
end
