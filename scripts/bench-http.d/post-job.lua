-- wrk script of scripts/bench-http: every request submits one echo job with a 1 KiB
-- body to POST /api/jobs, and the summary is printed as one machine-readable line.
wrk.method = "POST"
wrk.path = "/api/jobs?pool=bench&handler=echo"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
