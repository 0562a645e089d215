-- wrk script: a user's first SetMyPhone, every request by a user never seen before (the first
-- write creates the user's record). Tokens come from FIRST_TOKENS_FILE, each used once: each
-- thread walks its own slice. A thread that runs out of fresh users says so when wrk finishes,
-- since its later requests would be second writes (bench/run then reports the row as invalid).
local tokens = {}
for line in io.lines(os.getenv("FIRST_TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

local counter = 0
local per_thread = 0
local offset = 0
exhausted = 0
function init(args)
  local count = tonumber(os.getenv("WRK_THREADS") or "2")
  per_thread = math.floor(#tokens / count)
  offset = id * per_thread
end

function request()
  if counter >= per_thread then
    exhausted = 1
  end
  local user = offset + (counter % per_thread) + 1
  counter = counter + 1
  return wrk.format("PUT", "/auth/v1/users/me/phone",
    { ["authorization"] = "Bearer " .. tokens[user], ["content-type"] = "application/json" },
    '{"phone":"+41 71 000 01 00"}')
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") == 1 then
      io.stderr:write("first.lua: fresh users ran out; raise FIRST_USERS\n")
      os.exit(3)
    end
  end
end
