-- wrk script: PUT /auth/v1/users/me/phone for many users, alternating two numbers per user so
-- that every request is a real change. Each thread works its own slice of the users, so the
-- benchmark measures the service, not compare-and-swap contention on one record.
-- PUT_SERIES (0 to 99) picks the numbers' series: a run after another on the same store (bench/run's
-- warm-up, then its measurement) uses another series, so that its first PUTs are changes too.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local series = tonumber(os.getenv("PUT_SERIES") or "0") % 100
local counter = 0
local per_thread = 0
local offset = 0
function init(args)
  local count = tonumber(os.getenv("WRK_THREADS") or "2")
  per_thread = math.floor(#tokens / count)
  offset = id * per_thread
end

function request()
  local user = offset + (counter % per_thread) + 1
  local number = math.floor(counter / per_thread) % 2
  counter = counter + 1
  local body = string.format('{"phone":"+41 71 000 %02d %02d"}', series, number)
  return wrk.format("PUT", "/auth/v1/users/me/phone",
    { ["authorization"] = "Bearer " .. tokens[user], ["content-type"] = "application/json" }, body)
end
