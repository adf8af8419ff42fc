-- wrk script for bench/ratelimit.sh (memory part): every request carries a
-- new client address in X-Forwarded-For, and wrk exits after a given number
-- of responses.
--
-- Arguments (after `--`): LIMIT [BASE]
--   LIMIT  responses after which wrk exits (default 1000000)
--   BASE   index of the first address (default 0); request i of the run
--          uses address BASE + i, written as 10.x.y.z (i < 2^24)
-- Run it with -t1: the address counter and the exit are per thread.
--
-- tollgate must trust the connecting peer (--trusted-proxies 127.0.0.1/32)
-- so that the X-Forwarded-For entry is the client the limiter keys on.
--
-- wrk's main thread sleeps for the whole -d duration even when every thread
-- has called thread:stop(), so on reaching LIMIT the thread prints its
-- results and ends the process with os.exit(0); -d is only the upper bound
-- (then done() prints the same lines). Machine-readable output:
--   RL sent N               requests generated (= distinct addresses used)
--   RL responses N          responses received
--   RL status CODE N        responses with that status
--   RL duration_us N        from the thread's start to the last response

local ffi_ok, ffi = pcall(require, "ffi")
local now
if ffi_ok then
   ffi.cdef [[
      typedef struct { long tv_sec; long tv_nsec; } tg_rl_timespec;
      int clock_gettime(int clk_id, tg_rl_timespec *tp);
   ]]
   local ts = ffi.new("tg_rl_timespec")
   now = function()
      ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
   end
else
   now = os.time
end

local threads = {}

local function report(n_sent, n_responses, by_status, duration_us)
   io.write(string.format("RL sent %d\n", n_sent))
   io.write(string.format("RL responses %d\n", n_responses))
   for code, n in pairs(by_status) do
      io.write(string.format("RL status %d %d\n", code, n))
   end
   io.write(string.format("RL duration_us %d\n", duration_us))
end

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   limit = tonumber(args[1]) or 1000000
   base = tonumber(args[2]) or 0
   if base + limit + 65536 > 16777216 then
      error("LIMIT + BASE leave 10.0.0.0/8 (2^24 addresses)")
   end
   t0 = now()
   sent = 0
   responses = 0
   statuses = {}
   -- wrk.format() replaces wrk.headers with the table it is given, so the
   -- command line's headers (Host) are copied into ours once.
   headers = {}
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
end

function request()
   local n = base + sent
   sent = sent + 1
   headers["X-Forwarded-For"] = string.format("10.%d.%d.%d",
      math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
   return wrk.format(nil, nil, headers)
end

function response(status, headers, body)
   responses = responses + 1
   statuses[status] = (statuses[status] or 0) + 1
   if responses >= limit then
      report(sent, responses, statuses, (now() - t0) * 1e6)
      io.stdout:flush()
      os.exit(0)
   end
end

function done(summary, latency, requests)
   local total_sent, total_responses, total = 0, 0, {}
   for _, thread in ipairs(threads) do
      total_sent = total_sent + (thread:get("sent") or 0)
      total_responses = total_responses + (thread:get("responses") or 0)
      for code, n in pairs(thread:get("statuses") or {}) do
         total[code] = (total[code] or 0) + n
      end
   end
   report(total_sent, total_responses, total, summary.duration)
end
