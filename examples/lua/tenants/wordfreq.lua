-- wordfreq: word frequencies over everything this tenant has been sent.
-- The table grows with the vocabulary and stays in the tenant's VM between
-- requests.  Reply: total and distinct words so far, and the top three.
local freq, total, distinct = {}, 0, 0

function handle(text)
  for w in text:lower():gmatch("%a+") do
    if not freq[w] then
      distinct = distinct + 1
      freq[w] = 0
    end
    freq[w] = freq[w] + 1
    total = total + 1
  end
  local top = {}
  for w, n in pairs(freq) do
    top[#top + 1] = w
  end
  table.sort(top, function(a, b)
    return freq[a] > freq[b] or (freq[a] == freq[b] and a < b)
  end)
  local best = {}
  for i = 1, math.min(3, #top) do
    best[i] = top[i] .. "=" .. freq[top[i]]
  end
  return string.format("%d words, %d distinct; top %s", total, distinct, table.concat(best, " "))
end
