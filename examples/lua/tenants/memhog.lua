-- vmc-lua: limit = 4M
-- memhog: a tenant that hits its memory limit.  A request names a number
-- of KiB to hold at once in a local table.  Within the 4 MiB its VM may
-- commit that works; far above it the VM's heap returns NULL, Lua raises
-- "not enough memory", handle() fails with an ERR reply, and the table
-- becomes garbage.  The next request works again: nothing was corrupted.
served = served or 0

function handle(req)
  local kib = tonumber(req) or error("send a number of KiB")
  local t = {}
  for i = 1, kib do
    t[i] = string.rep("x", 1000) .. i      -- about 1 KiB each, all distinct
  end
  served = served + 1
  return string.format("held %d KiB; request %d", kib, served)
end
