-- tpl.lua — wrk script for bench/tpl.bench: every request asks /tpl with two query
-- parameters that change per request (a name needing escaping and decoding, and a number).
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/tpl?name=user%3C" .. counter .. "%3E%26co&n=" .. (counter % 97))
end
