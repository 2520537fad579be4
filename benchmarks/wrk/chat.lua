-- POST /v1/chat/completions, the same body every time (the runtime and LiteLLM's proxy read "model" as
-- the agent or model name "bench"; the model server answers any name).
-- Usage: wrk -s chat.lua URL -- API_KEY
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.body = '{"model": "bench", "messages": [{"role": "user", "content": "hello from the benchmark"}]}'
end
