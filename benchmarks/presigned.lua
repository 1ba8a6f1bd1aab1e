-- presigned.lua: a wrk script that cycles through pre-generated presigned
-- S3 URLs, so every request carries a full SigV4 query signature that the
-- server has to verify.
--
-- Usage (benchmarks/run.py builds this command line):
--
--   wrk -t2 -c16 -d10s --latency --timeout 10s -s benchmarks/presigned.lua \
--       http://127.0.0.1:PORT -- URLFILE NTHREADS START BODYMODE
--
--   URLFILE   one request per line: "METHOD URL" (the URL as botocore's
--             generate_presigned_url returns it; only path + query are sent,
--             the Host header comes from wrk's own URL, which must therefore
--             be the host:port the URLs were signed for).
--   NTHREADS  the -t value, so threads can take disjoint lines (default 1).
--   START     index of the first line to use (default 0): run.py advances it
--             between PUT runs so each run writes fresh keys.
--   BODYMODE  "unique" (default): every PUT body is 4 KiB whose first 32
--             bytes carry the thread and a counter, so content-addressed
--             dedup cannot skip the write; "fixed": the same 4 KiB every time.
--             Either may end in ":BYTES" for another body size (at least
--             32), e.g. "unique:65536" (benchmarks/suite.py); without it the
--             body is 4096 bytes, as run.py sends.
--
-- Thread t uses lines START+t, START+t+NTHREADS, ... wrapping at the end of
-- the file; all connections of a thread share that sequence.
--
-- Every response that is not 2xx is an error: counted per thread, the first
-- few are kept as samples, and done() prints them. done() prints exactly one
-- machine-readable line:
--
--   FSBENCH_RESULT {"requests":..,"duration_us":..,"rps":..,"p50_us":..,
--                   "p99_us":..,"non2xx":..,"socket_errors":..,...}
--
-- A run with non2xx > 0 or socket errors is invalid; run.py fails on it.

local DEFAULT_BODY_SIZE = 4096
local threads = {}
local thread_counter = 0

function setup(thread)
   thread:set("tid", thread_counter)
   thread_counter = thread_counter + 1
   table.insert(threads, thread)
end

local function split_url(url)
   local path = url:match("^https?://[^/]+(/.*)$")
   if path == nil then
      error("not an absolute http(s) URL: " .. url)
   end
   return path
end

function init(args)
   local urlfile = args[1]
   if urlfile == nil then
      error("presigned.lua needs the URL file: wrk ... -s presigned.lua URL -- URLFILE")
   end
   nthreads = tonumber(args[2] or "1")
   start = tonumber(args[3] or "0")
   local mode, size = (args[4] or "unique"):match("^(%a+):?(%d*)$")
   if mode == nil then
      error("BODYMODE must be unique or fixed, optionally :BYTES, not " .. args[4])
   end
   bodymode = mode
   body_size = tonumber(size) or DEFAULT_BODY_SIZE
   if body_size < 32 then
      error("a PUT body must be at least 32 bytes, not " .. body_size)
   end
   tid = tid or 0

   methods = {}
   paths = {}
   prebuilt = {}
   local f = assert(io.open(urlfile, "r"))
   for line in f:lines() do
      local method, url = line:match("^(%u+)%s+(%S+)%s*$")
      if method ~= nil then
         table.insert(methods, method)
         table.insert(paths, split_url(url))
      end
   end
   f:close()
   count = #paths
   if count == 0 then
      error("no 'METHOD URL' lines in " .. urlfile)
   end
   for i = 1, count do
      if methods[i] ~= "PUT" then
         prebuilt[i] = wrk.format(methods[i], paths[i])
      end
   end

   -- the filler (4 KiB unless BODYMODE says otherwise); unique mode
   -- overwrites the first 32 bytes per request.
   filler = string.rep("fasterstore benchmark body 4KiB\n", math.ceil(body_size / 32)):sub(1, body_size)
   filler_tail = filler:sub(33)

   position = start + tid   -- 0-based line index, advanced by nthreads
   sent = 0
   responses = 0
   errors = 0
   samples = {}
end

function request()
   local i = (position % count) + 1
   position = position + nthreads
   sent = sent + 1
   local req = prebuilt[i]
   if req ~= nil then
      return req
   end
   local body
   if bodymode == "fixed" then
      body = filler
   else
      body = string.format("%-32s", string.format("t%d n%d line%d", tid, sent, i - 1)) .. filler_tail
   end
   return wrk.format(methods[i], paths[i], nil, body)
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      errors = errors + 1
      if #samples < 3 then
         local snippet = body or ""
         if #snippet > 300 then
            snippet = snippet:sub(1, 300)
         end
         table.insert(samples, string.format("HTTP %d: %s", status, snippet))
      end
   end
end

local function json_string(s)
   s = s:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == "\\" then return "\\\\" end
      return string.format("\\u%04x", c:byte())
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local non2xx = 0
   local seen = 0
   local all_samples = {}
   for _, thread in ipairs(threads) do
      non2xx = non2xx + (thread:get("errors") or 0)
      seen = seen + (thread:get("responses") or 0)
      local s = thread:get("samples") or {}
      for _, line in ipairs(s) do
         table.insert(all_samples, line)
      end
   end
   local e = summary.errors
   local duration_s = summary.duration / 1e6
   local quoted = {}
   for _, line in ipairs(all_samples) do
      table.insert(quoted, json_string(line))
      io.stderr:write("FSBENCH_ERROR " .. line:gsub("%s+", " ") .. "\n")
   end
   if non2xx > 0 then
      io.stderr:write(string.format("FSBENCH_ERROR %d non-2xx responses: this run is INVALID\n", non2xx))
   end
   print(string.format(
      'FSBENCH_RESULT {"requests":%d,"responses_seen":%d,"duration_us":%d,"rps":%.3f,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"non2xx":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
      .. '"status_errors":%d,"samples":[%s]}',
      summary.requests, seen, summary.duration, summary.requests / duration_s,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
      latency.max, latency.mean, non2xx,
      e.connect, e.read, e.write, e.timeout, e.status,
      table.concat(quoted, ",")))
end
