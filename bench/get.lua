-- wrk script: GET /auth/v1/users/me/phone round-robin over the users' tokens (TOKENS_FILE, one a
-- line), so that the benchmark sees many callers as a service does, not one token over and over.
-- Each thread cycles through its own slice of the users. bench/run also sends the hello-world
-- baseline through this script, so both pay the same client-side cost.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local counter = 0
local per_thread = 0
local offset = 0
function init(args)
  local count = tonumber(os.getenv("WRK_THREADS") or "2")
  per_thread = math.max(1, math.floor(#tokens / count))
  offset = (id * per_thread) % #tokens
end

function request()
  local user = offset + (counter % per_thread) + 1
  counter = counter + 1
  return wrk.format("GET", "/auth/v1/users/me/phone", { ["authorization"] = "Bearer " .. tokens[user] })
end
