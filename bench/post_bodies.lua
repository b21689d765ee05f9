-- wrk script: POST JSON bodies read from BODIES_FILE (one body per line), in rotation,
-- to REQUEST_PATH (default: Tocsin's webhook; Alertmanager's ingest is /api/v2/alerts).
local bodies = {}
local path = os.getenv("BODIES_FILE")
local target = os.getenv("REQUEST_PATH") or "/webhook/alertmanager"
for line in io.lines(path) do
  bodies[#bodies + 1] = line
end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Alertmanager/0.25.0"

request = function()
  i = i % #bodies + 1
  return wrk.format(nil, target, nil, bodies[i])
end
