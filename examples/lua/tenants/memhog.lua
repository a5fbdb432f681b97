-- vmc-lua: limit = 4M
-- memhog: a tenant that hits its memory limit.  A request names how many
-- KiB to hold at once, in 64 KiB strings kept in a local table.  Within the
-- 4 MiB its VM may commit that works; far above it the VM's heap returns
-- NULL, Lua raises "not enough memory", handle() fails with an ERR reply,
-- and the table becomes garbage.  The next request works again: nothing
-- was corrupted, and the state (served) is intact.
served = served or 0
local KiB = string.rep("x", 1024)

function handle(req)
  local kib = tonumber(req) or error("send a number of KiB")
  local t = {}
  for i = 1, (kib + 63) // 64 do
    t[i] = string.rep(KiB, 63) .. string.rep(string.format("%016d", i), 64)   -- all distinct
  end
  served = served + 1
  return string.format("held %d KiB; request %d", kib, served)
end
