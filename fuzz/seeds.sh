#!/usr/bin/env bash
# Makes the seed corpora (corpus/<target>/seed-*) from the real fixtures:
# the recorded Shelly answers (../shared/shelly-fixtures, see its README),
# the shipped example configs and scenarios, the example history files, and
# a few hand-made samples. Run again when fixtures or examples change; the
# inputs the fuzzer finds later live beside the seeds.
set -euo pipefail
cd "$(dirname "$0")"
root=..
shelly=${SHELLY_FIXTURES:-$root/../shared/shelly-fixtures}
seed() { # target name < content
    mkdir -p "corpus/$1"
    cat > "corpus/$1/seed-$2"
}

for f in "$root"/examples/*.toml; do
    name=$(basename "$f" .toml)
    if [ "$name" = watcher ]; then
        seed watcher_config "$name" < "$f"
    else
        seed config "$name" < "$f"
    fi
done
for f in "$root"/examples/scenarios/*.toml; do
    seed scenario "$(basename "$f" .toml)" < "$f"
done
for f in "$root"/examples/scenarios/wan-monitor-log/*.csv; do
    # The first rows only: the fuzzer mutates small inputs best.
    head -n 40 "$f" | seed history_csv "$(basename "$f" .csv)"
done
printf 'timestamp,datetime,status,ping_ms,target\n1764030612.123,2025-11-25T00:30:12.123Z,ok,9.412,cloudflare\n1764030612.123,2025-11-25T00:30:12.123Z,fail,,"a ""quoted"", name"\n# comment\r\n\n' |
    seed history_csv quoted

# Shelly answers: a status byte (0: 200, 1: 401, 2: 404, 3: 500, 4: 400),
# then the challenge and a NUL when there is one, then the body.
answer() { # name status-byte [challenge] < body (none: no seed)
    local body
    body=$(cat)
    [ -n "$body" ] || return 0
    { printf "\\x$(printf %02x "$2")"; [ $# -gt 2 ] && printf '%s\0' "$3"; printf '%s' "$body"; } | seed shelly_answer "$1"
}
for f in "$shelly"/gen*.json; do
    name=$(basename "$f" .json)
    for part in $(jq -r 'keys[]' "$f"); do
        jq -c ".$part" "$f" | answer "$name-$part" 0
    done
    jq -c '.status.relays[0] // empty' "$f" | answer "$name-relay" 0
    jq -c '.status["switch:0"] // empty | {id: 1, src: "shelly", result: .}' "$f" | answer "$name-switch-status" 0
    jq -c '.config["switch:0"] // empty | {id: 1, src: "shelly", result: .}' "$f" | answer "$name-switch-config" 0
done
for f in "$shelly"/rpc/*; do
    name=$(basename "$f")
    if jq -e 'has("id")' "$f" > /dev/null; then
        answer "$name" 0 < "$f"
    else
        jq -c '{id: 1, src: "shelly", result: .}' "$f" | answer "$name" 0
    fi
done
challenge='Digest qop="auth", realm="shellyplus2pm-485519992590", nonce="60dc59c6", algorithm=SHA-256'
printf '{"code":401,"message":"Unauthorized"}' | answer digest-401 1 "$challenge"
printf '{"id":1,"src":"shelly","error":{"code":-105,"message":"Argument id, value 1 not found! s3cret-Pa55word"}}' |
    answer rpc-error-echoing-the-password 0
printf '<html>login</html>' | answer not-json 3

seed digest_challenge shelly <<< "$challenge"
seed digest_challenge rfc7616 <<'T'
Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
T
seed digest_challenge escaped <<< 'Digest realm="a \"quoted\" \\realm", nonce=abc, algorithm=sha-256'

# DNS: the query id, then a response (NOERROR, SERVFAIL) to `example.com`.
question='\x07example\x03com\x00\x00\x01\x00\x01'
printf "\\x12\\x34\\x12\\x34\\x81\\x80\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00$question" | seed dns_answer noerror
printf "\\x12\\x34\\x12\\x34\\x81\\x82\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00$question" | seed dns_answer servfail
printf '\x00\x01dns.example.net.' | seed dns_answer name

notification='{"title":"WAN down","body":"since 12:00","priority":4,"raised_at_ms":1764030612123,"plugin":"notify","wan_state":"down","wan_since_ms":1764030600000}'
quality='{"sent":10,"answered":9,"loss_percent":10.0,"rtt_mean_ms":9.412}'
report='{"id":"outage-1764030612123","started_at_ms":1764030612123,"down_at_ms":1764030642123,"ended_at_ms":1764031242123,"duration_ms":630000,"cause":"isp","evidence":"all wan targets failed","power_cycles":[{"at_ms":1764030700000,"device":"modem","outcome":"back on by itself"}],"fixed_by_cycle":0,"targets":[{"name":"cloudflare","before":'$quality',"during":{"sent":5,"answered":0,"loss_percent":100.0,"rtt_mean_ms":null},"after":'$quality'}]}'
printf '{"id":3,"done":["ntfy"],"notification":%s}\n{"id":4,"report":%s}\n' "$notification" "$report" | seed notify_queue two
printf '{"id":5,"notification":%s}\n{"id":6,"notif' "$notification" | seed notify_queue torn

seed kv_file plain <<< '{"cycles":"3","last":"1764030612123"}'
printf '{"esc\\n":"\\u0001\\"\\\\","\xc3\xa9":""}' | seed kv_file escapes
printf '{}' | seed kv_file empty

seed watcher_protocol heartbeat <<< '{"sent_at_ms":1764030612123,"version":"0.1.0","state":"up","state_since_ms":1764030000000,"interval_s":60,"summary":{"rtt_ms":9.412,"loss_percent":0.0,"outages_today":1,"last_outage_ms":600000,"dry_run":false}}'
printf '%s' "$report" | seed watcher_protocol report

for q in 'since=7d&until=2026-12-01T00:00:00Z&limit=5' 'since=1000&until=2000' 'since=1h%2030m' 'limit=10001' 'since=x&since=y' 'nope=1'; do
    printf '%s' "$q" | seed api_query "$(printf '%s' "$q" | tr -c 'a-z0-9' _ | cut -c1-24)"
done

# The status file: corpus/status_file/seed-daemon-loopback is one a daemon
# wrote (`wanwatch run --config examples/loopback.toml`, as jq -c shows it);
# kept as it is, not made here.
