-- counter: a counter whose state persists.  Whichever worker runs a
-- request, `count` is the same variable: it lives in the tenant's VM, with
-- the rest of this Lua state.
--   incr -> the new count     get -> the count     add N -> the new count
count = count or 0

function handle(req)
  if req == "incr" or req == "" then
    count = count + 1
    return count
  elseif req == "get" then
    return count
  end
  local n = tonumber(req:match("^add%s+(%-?%d+)$"))
  if n then
    count = count + n
    return count
  end
  error("unknown request '" .. req .. "' (incr, get, add N)")
end
