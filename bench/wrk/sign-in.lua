-- wrk: a flood of sign-ins (POST /v1/auth/token) with the account in EMAIL / PASSWORD.
wrk.method = "POST"
wrk.body = string.format('{"email":"%s","password":"%s"}', os.getenv("EMAIL") or "", os.getenv("PASSWORD") or "")
wrk.headers["Content-Type"] = "application/json"
