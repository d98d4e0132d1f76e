-- wrk: POST /echo with a JSON body; with TOKEN set, as an authenticated caller.
wrk.method = "POST"
wrk.body = '{"message":"hello world"}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
