-- wrk script for bench/ratelimit.sh (accuracy part): counts responses by
-- status, and allowed (200) responses per second since the thread started.
--
-- The request stays wrk's static one (no request() function); response()
-- runs once per response. At the end, done() prints machine-readable lines:
--   RL duration_us N        wrk's run duration
--   RL status CODE N        responses with that status (all threads)
--   RL second K N           200s that arrived in second K (0-based) of the run
-- Seconds are measured with clock_gettime(CLOCK_MONOTONIC) through LuaJIT's
-- FFI (os.time() has one-second resolution and is not aligned to the run).

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

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   -- Globals, so that done() can fetch them with thread:get().
   statuses = {}
   allowed = {}
   t0 = now()
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 200 then
      local second = math.floor(now() - t0)
      allowed[second] = (allowed[second] or 0) + 1
   end
end

function done(summary, latency, requests)
   local total, per_second = {}, {}
   for _, thread in ipairs(threads) do
      for code, n in pairs(thread:get("statuses") or {}) do
         total[code] = (total[code] or 0) + n
      end
      for second, n in pairs(thread:get("allowed") or {}) do
         per_second[second] = (per_second[second] or 0) + n
      end
   end
   io.write(string.format("RL duration_us %d\n", summary.duration))
   for code, n in pairs(total) do
      io.write(string.format("RL status %d %d\n", code, n))
   end
   for second, n in pairs(per_second) do
      io.write(string.format("RL second %d %d\n", second, n))
   end
end
