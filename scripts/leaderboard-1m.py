"""Client side of scripts/leaderboard-1m: N requests each of top-100, a player's rank and
around-me on one keep-alive connection, then 50 custom games whose results must show in the
players' ranks as soon as their 200 is answered. Loopback only."""
import http.client
import json
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from urllib.parse import urlparse

base, n, out, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
url = urlparse(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
server_key = __import__("os").environ["VERSUS_SESSIONS__SERVER_KEY"]


def call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, (json.loads(data) if data else None)


name = "bench_" + uuid.uuid4().hex[:10]
status, session = call("POST", "/api/v1/auth/register", {"username": name, "password": "correct horse battery"})
assert status in (200, 201), (status, session)
token = session["access_token"]

if backend == "postgres":
    import os
    rows = subprocess.run(
        ["psql", os.environ["VERSUS_DATABASE_URL"], "-tAc",
         "select player_id from player_ratings tablesample system (1) limit 5000"],
        check=True, capture_output=True, text=True).stdout.split()
    players = [r.strip() for r in rows if r.strip()]
else:
    db = sqlite3.connect(f"file:{out}/data/versus.db?mode=ro", uri=True)
    players = [str(uuid.UUID(bytes=r[0])) for r in
               db.execute("select player_id from player_ratings order by random() limit 5000")]
random.seed(1)
client = {"top-100": [], "rank": [], "around": []}
for i in range(n):
    for kind in client:
        if kind == "top-100":
            path = "/api/v1/leaderboards/ranked-1v1?limit=100"
        elif kind == "rank":
            path = f"/api/v1/leaderboards/ranked-1v1/players/{random.choice(players)}"
        else:
            path = f"/api/v1/leaderboards/ranked-1v1/around/{random.choice(players)}?limit=10"
        started = time.perf_counter()
        status, body = call("GET", path, token=token)
        client[kind].append((time.perf_counter() - started) * 1000)
        assert status == 200, (path, status, body)


def pct(a, q):
    a = sorted(a)
    return a[min(len(a) - 1, int(q * len(a)))]


for kind, v in client.items():
    print(f"client-side {kind:8s} n={len(v)} p50={pct(v, .5):.2f} p99={pct(v, .99):.2f} ms")

# Results move ranks: a custom game between two random players, then their places at once.
visible = []
for _ in range(50):
    a, b = random.sample(players, 2)
    headers_key = server_key
    conn.request("POST", "/api/v1/sessions", body=json.dumps(
        {"queue": "ranked-1v1", "teams": [{"players": [a]}, {"players": [b]}], "ranked": True}),
        headers={"content-type": "application/json", "authorization": f"Bearer {headers_key}"})
    r = conn.getresponse()
    created = json.loads(r.read())
    assert r.status in (200, 201), (r.status, created)
    sid = created["session_id"]
    before = call("GET", f"/api/v1/leaderboards/ranked-1v1/players/{a}", token=token)[1]["entry"]
    started = time.perf_counter()
    conn.request("POST", f"/api/v1/sessions/{sid}/result", body=json.dumps(
        {"teams": [{"players": [a], "rank": 1}, {"players": [b], "rank": 2}]}),
        headers={"content-type": "application/json", "authorization": f"Bearer {headers_key}"})
    r = conn.getresponse()
    applied = json.loads(r.read())
    assert r.status == 200, (r.status, applied)
    after = next(p for p in applied["players"] if p["player_id"] == a)["after"]["display_rating"]
    status, place = call("GET", f"/api/v1/leaderboards/ranked-1v1/players/{a}", token=token)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200 and abs(place["entry"]["rating"] - after) < 1e-9, (place, after)
    # (A win need not raise the rank: a conservative display rating can dip when a game says
    # little, e.g. a Glicko-2 win over a far weaker player.)
    assert place["entry"]["games"] == before["games"] + 1, (before, place)
    visible.append(elapsed)
print(f"result POST sent -> new rank read back: n={len(visible)} p50={pct(visible, .5):.2f} "
      f"p99={pct(visible, .99):.2f} max={max(visible):.2f} ms (the rank already moved on every first read)")

# A season rolled over mid-run by an admin while results keep coming: how long the admin waits,
# how long the background carry-over takes, and what the results posted meanwhile see.
versus_bin = __import__("os").environ.get("BENCH_VERSUS_BIN")
if versus_bin:
    import threading
    granted = subprocess.run([versus_bin, "admin", "grant", name], capture_output=True, text=True)
    assert granted.returncode == 0, granted.stderr[-2000:]
    done = threading.Event()
    during = []
    failures = []

    def post_results():
        c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        rng = random.Random(2)
        key = {"content-type": "application/json", "authorization": f"Bearer {server_key}"}
        while not done.is_set():
            a, b = rng.sample(players, 2)
            c.request("POST", "/api/v1/sessions", body=json.dumps(
                {"queue": "ranked-1v1", "teams": [{"players": [a]}, {"players": [b]}], "ranked": True}),
                headers=key)
            r = c.getresponse()
            created = json.loads(r.read())
            if r.status != 201:
                failures.append(("create", r.status, created.get("code")))
                continue
            sid = created["session_id"]
            started = time.perf_counter()
            c.request("POST", f"/api/v1/sessions/{sid}/result", body=json.dumps(
                {"teams": [{"players": [a], "rank": 1}, {"players": [b], "rank": 2}]}), headers=key)
            r = c.getresponse()
            r.read()
            during.append((time.perf_counter() - started) * 1000)
            if r.status != 200:
                failures.append(r.status)
            time.sleep(0.02)

    poster = threading.Thread(target=post_results)
    poster.start()
    time.sleep(1)
    started = time.perf_counter()
    status, rolled = call("POST", "/api/v1/admin/leaderboards/ranked-1v1/rollover", token=token)
    rolled_ms = (time.perf_counter() - started) * 1000
    assert status == 200, (status, rolled)
    frozen_reads = []
    carried = None
    deadline = time.time() + 600
    while carried is None and time.time() < deadline:
        t = time.perf_counter()
        status, old = call("GET", f"/api/v1/leaderboards/ranked-1v1?limit=100&season={rolled['number'] - 1}", token=token)
        frozen_reads.append((time.perf_counter() - t) * 1000)
        assert status == 200 and old["total"] > 0, (status, old)
        for line in open(f"{out}/server.log"):
            if '"season carry-over done"' in line:
                carried = json.loads(line)["details"]
        time.sleep(0.2)
    done.set()
    poster.join()
    assert carried, "the carry-over did not finish in 10 minutes"
    print(f"admin rollover answered in {rolled_ms:.1f} ms; carry-over ({carried['batches']} batches of {carried['batch']}) "
          f"took {carried['seconds']:.1f} s ({carried['ranked_after_results']} standings ranked after results)")
    print(f"results during the carry-over: n={len(during)} failed={len(failures)} "
          f"p50={pct(during, .5):.2f} p99={pct(during, .99):.2f} max={max(during):.2f} ms")
    print(f"frozen season top-100 during the carry-over: n={len(frozen_reads)} "
          f"p50={pct(frozen_reads, .5):.2f} p99={pct(frozen_reads, .99):.2f} ms (client-side; the first builds its index)")
    assert not failures, failures
