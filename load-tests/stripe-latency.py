#!/usr/bin/env python3
"""Latency of signed Stripe deliveries (checkout.session.completed), one at a
time, against a running gateway: registers a code and a Stripe endpoint with
the admin key, then posts N events signed as Stripe does.

    codelink serve --listen 127.0.0.1:8080 --admin-key <key> [--flush-ms N] &
    load-tests/stripe-latency.py http://127.0.0.1:8080 <key> 300
"""
import hmac, hashlib, json, time, urllib.request, sys, statistics
base, key = sys.argv[1], sys.argv[2]
def req(method, path, body=None, headers={}):
    r = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
auth = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
req("POST", "/api/v1/codes", json.dumps({"code": "bench", "destination": "https://shop.example/", "owner": "b",
    "commission": {"currency": "EUR", "purchase_bps": 1000}}).encode(), auth)
secret = "whsec_benchSecret0123"
s, b = req("POST", "/api/v1/integrations", json.dumps({"provider": "stripe", "secret": secret}).encode(), auth)
path = "/api/v1/integrations/stripe/" + json.loads(b)["id"]
lat = []
n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
for i in range(n):
    ev = {"id": f"evt_bench_{i}", "object": "event", "created": int(time.time()), "type": "checkout.session.completed",
          "data": {"object": {"id": f"cs_{i}", "mode": "payment", "payment_status": "paid", "amount_total": 4900,
                              "currency": "eur", "customer": f"cus_{i}", "payment_intent": f"pi_{i}",
                              "metadata": {"cl_code": "bench"}}}}
    body = json.dumps(ev).encode()
    t = int(time.time())
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    start = time.perf_counter()
    s, out = req("POST", path, body, {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"})
    lat.append((time.perf_counter() - start) * 1000)
    assert s == 200 and json.loads(out)["status"] == "created", (s, out)
lat.sort()
print(f"{n} deliveries: p50 {lat[n//2]:.1f} ms, p99 {lat[int(n*0.99)-1]:.1f} ms, max {lat[-1]:.1f} ms")
