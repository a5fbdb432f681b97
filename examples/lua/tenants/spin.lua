-- spin: a tenant that burns CPU on request.  "N" runs a loop of N
-- iterations; "forever" never returns by itself: the host's CPU budget
-- (Lua instructions per request) ends it with an error, the tenant's state
-- stays intact (served keeps counting) and the next request works.
-- Anything else is echoed back with the number of requests served so far.
served = served or 0

function handle(req)
  served = served + 1
  if req == "forever" then
    while true do end
  end
  local n = tonumber(req)
  if n then
    local x = 0
    for i = 1, n do x = x + i % 7 end
    return string.format("%d iterations (request %d)", n, served)
  end
  return string.format("%s (request %d)", req, served)
end
