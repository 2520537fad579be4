-- POST /v1/agents/bench/invoke, each request in a conversation of its own ("RUN-THREAD-N"), so every
-- request reads and writes history without one conversation growing for the whole run.
-- Usage: wrk -s invoke.lua URL -- API_KEY RUN   (RUN keeps the ids of separate wrk runs apart)
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  run = args[2]
  sent = 0
end

function request()
  sent = sent + 1
  local id = string.format("%s-%d-%d", run, thread_number, sent)
  local body = string.format('{"input": "hello from the benchmark", "conversation_id": "%s"}', id)
  return wrk.format(nil, nil, nil, body)
end
