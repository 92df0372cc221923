#!/usr/bin/env bash
# Times the web console's pages on a gateway that is already running (e.g. the
# one analytics-bench.sh leaves up with --linger-secs, or `codelink serve` on
# the data dir it kept with --data-dir): signs in as the admin and as the
# creator who owns CODE (a creator key is issued for them through the API),
# then for each page 1 warm-up and 7 timed requests. Prints a markdown table
# of the server's own time (the page's Server-Timing header) and curl's total
# time, p50 and max in ms, with the page's size. Reads only (plus that key);
# 127.0.0.1 expected; bounded (8 requests per page).
#
#   load-tests/ui-probe.sh URL ADMIN_KEY CODE
set -euo pipefail
[[ $# -eq 3 ]] || { sed -n '2,11p' "$0" >&2; exit 2; }
url="$1" admin_key="$2" code="$3"
command -v curl >/dev/null || { echo "ui-probe.sh: curl is required" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# sign_in JAR KEY: the pre-session cookie and its CSRF token, then the key.
sign_in() {
    local csrf
    csrf=$(curl -s -c "$1" "$url/ui/sign-in" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"$//')
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' -b "$1" -c "$1" \
        --data-urlencode "csrf=$csrf" --data-urlencode "key=$2" "$url/ui/sign-in")
    [[ $status == 303 ]] || { echo "ui-probe.sh: sign-in answered $status" >&2; exit 1; }
}

owner=$(curl -s -H "Authorization: Bearer $admin_key" "$url/api/v1/codes/$code" \
    | sed -n 's/.*"owner":"\([^"]*\)".*/\1/p')
[[ -n $owner ]] || { echo "ui-probe.sh: code $code not found" >&2; exit 1; }
creator_key=$(curl -s -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
    -d "{\"kind\":\"creator\",\"creator\":\"$owner\"}" "$url/api/v1/keys" \
    | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
sign_in "$tmp/admin" "$admin_key"
sign_in "$tmp/creator" "$creator_key"

pct() { sort -n | awk '{a[NR]=$1} END {printf "%s | %s", a[int((NR+1)/2)], a[NR]}'; }

row() { # label jar path
    curl -s -o /dev/null -b "$2" "$url$3"
    local server=() total=() bytes status
    for _ in 1 2 3 4 5 6 7; do
        local out
        out=$(curl -s -D "$tmp/h" -o "$tmp/body" -w '%{http_code} %{time_total} %{size_download}' -b "$2" "$url$3")
        status=${out%% *}
        bytes=${out##* }
        total+=("$(awk '{printf "%.1f", $2 * 1000}' <<<"$out")")
        server+=("$(tr -d '\r' <"$tmp/h" | sed -n 's/^server-timing: app;dur=//Ip')")
    done
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(printf '%s\n' "${server[@]}" | pct)" \
        "$(printf '%s\n' "${total[@]}" | pct)" "$bytes" "$status"
}

echo "| page | server p50 ms | server max ms | total p50 ms | total max ms | bytes | status |"
echo "|---|---:|---:|---:|---:|---:|---|"
for r in today 7d 30d 90d; do
    row "admin: all codes, $r" "$tmp/admin" "/ui/codes?range=$r&tz=UTC"
done
row "admin: all codes, 90d, sorted by earnings" "$tmp/admin" "/ui/codes?range=90d&tz=UTC&sort=earnings"
for r in today 7d 30d 90d; do
    row "admin: code $code, $r" "$tmp/admin" "/ui/codes/$code?range=$r&tz=UTC"
done
row "admin: code $code, 30d, Europe/Berlin" "$tmp/admin" "/ui/codes/$code?range=30d&tz=Europe/Berlin"
for by in code channel device in_app; do
    row "admin: funnel by $by, 30d" "$tmp/admin" "/ui/funnel?by=$by&range=30d&tz=UTC"
    row "admin: funnel by $by, 90d" "$tmp/admin" "/ui/funnel?by=$by&range=90d&tz=UTC"
done
row "admin: live numbers of $code, 30d" "$tmp/admin" "/ui/codes/$code/live?range=30d&tz=UTC"
row "admin: CSV of all codes, 90d" "$tmp/admin" "/ui/export?report=codes&range=90d&tz=UTC"
row "creator $owner: my codes" "$tmp/creator" "/ui/codes?tz=UTC"
row "creator $owner: code $code, 30d" "$tmp/creator" "/ui/codes/$code?range=30d&tz=UTC"
row "creator $owner: funnel by channel, 30d" "$tmp/creator" "/ui/funnel?by=channel&range=30d&tz=UTC"
