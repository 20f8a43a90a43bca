-- wrk script for bench/load.sh: each thread replays the signed bodies of its own file
-- (BODIES.<thread index>, written by bench/make_bodies.py) with their X-Hook-Signature, and
-- counts the responses by status. Requests are formatted once in init, so the client spends
-- little CPU per request on a machine it shares with the server.
--
-- Environment: BODIES (path prefix of the files), WEBHOOK_PATH (default /webhooks/BUG),
-- EXPECT_REPEATS=1 when the files hold one body to repeat (the heartbeat run).
-- When a thread has sent every body of its file it starts again from the first one. The queue
-- then drops the repeats as duplicates, so done() reports it: the acknowledged count no longer
-- equals the count of queued events.

local threads = {}
local next_index = 0

function setup(thread)
   thread:set("thread_index", next_index)
   next_index = next_index + 1
   table.insert(threads, thread)
end

local requests_formatted = {}
local position = 0
sent = 0
wrapped = 0
statuses = {}

function init(args)
   local prefix = os.getenv("BODIES") or error("BODIES is not set: the path prefix of the body files")
   local path = os.getenv("WEBHOOK_PATH") or "/webhooks/BUG"
   local file = io.open(prefix .. "." .. thread_index, "rb") or error("cannot open " .. prefix .. "." .. thread_index)
   for line in file:lines() do
      local space = line:find(" ", 1, true)
      local signature = line:sub(1, space - 1)
      local body = line:sub(space + 1)
      local headers = {
         ["Content-Type"] = "application/json",
         ["X-Hook-Signature"] = signature,
      }
      table.insert(requests_formatted, wrk.format("POST", path, headers, body))
   end
   file:close()
   if #requests_formatted == 0 then
      error("no bodies in " .. prefix .. "." .. thread_index)
   end
   available = #requests_formatted
end

function request()
   position = position + 1
   if position > #requests_formatted then
      position = 1
      wrapped = wrapped + 1
   end
   sent = sent + 1
   return requests_formatted[position]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local totals = {}
   local sent_total, wrapped_total, available_total = 0, 0, 0
   for _, thread in ipairs(threads) do
      sent_total = sent_total + thread:get("sent")
      wrapped_total = wrapped_total + thread:get("wrapped")
      available_total = available_total + thread:get("available")
      for status, count in pairs(thread:get("statuses")) do
         totals[status] = (totals[status] or 0) + count
      end
   end
   local keys = {}
   for status in pairs(totals) do
      table.insert(keys, status)
   end
   table.sort(keys)
   for _, status in ipairs(keys) do
      io.write(string.format("status %d: %d\n", status, totals[status]))
   end
   io.write(string.format("requests sent: %d of %d distinct bodies\n", sent_total, available_total))
   if wrapped_total > 0 and os.getenv("EXPECT_REPEATS") ~= "1" then
      io.write("bodies repeated: a thread sent all of its bodies and started again\n")
   end
end
