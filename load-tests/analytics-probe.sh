#!/usr/bin/env bash
# Times the analytics endpoints of a gateway that is already running, over
# HTTP with curl: 1 warm-up, then 7 timed requests per case; prints a markdown
# table of p50 and max (ms) and the status. For data already loaded (e.g. a
# large ClickHouse database left by analytics-bench.sh), where a fresh load
# would take hours. Reads only; 127.0.0.1 expected; bounded (7 cases × 8 requests
# per scope and range).
#
#   load-tests/analytics-probe.sh URL ADMIN_KEY CODE RANGE...
#   RANGE is LABEL=FROM/TO in RFC 3339, e.g.
#   load-tests/analytics-probe.sh http://127.0.0.1:8080 "$KEY" c0000 \
#       30d=2026-09-30T18:00:00Z/2026-10-30T18:00:00Z 90d=2026-08-30T00:00:00Z/2026-11-28T00:00:00Z
set -euo pipefail
[[ $# -ge 4 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
url="$1" key="$2" code="$3"
shift 3
command -v curl >/dev/null || { echo "analytics-probe.sh: curl is required" >&2; exit 2; }

body=$(mktemp)
trap 'rm -f "$body"' EXIT

case_row() { # label path
    local t status ms sorted
    curl -s -o /dev/null -H "Authorization: Bearer $key" "$url$2"
    local times=()
    for _ in 1 2 3 4 5 6 7; do
        t=$(curl -s -o "$body" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $key" "$url$2")
        status=${t%% *}
        ms=$(awk '{printf "%.0f", $2 * 1000}' <<<"$t")
        times+=("$ms")
    done
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    printf '| %s | %s | %s | %s |\n' "$1" "$(sed -n 4p <<<"$sorted")" "$(tail -1 <<<"$sorted")" "$status"
}

echo "| case | p50 ms | max ms | status |"
echo "|---|---:|---:|---|"
for scope in all "$code"; do
    for r in "$@"; do
        label=${r%%=*} span=${r#*=}
        q="from=${span%%/*}&to=${span#*/}"
        [[ $scope == all ]] || q="$q&code=$scope"
        p="/api/v1/analytics"
        l="$scope / $label"
        case_row "$l / summary" "$p/summary?$q"
        case_row "$l / timeseries day" "$p/timeseries?$q&interval=day"
        case_row "$l / timeseries hour" "$p/timeseries?$q&interval=hour"
        case_row "$l / timeseries day Europe/Berlin" "$p/timeseries?$q&interval=day&tz=Europe/Berlin"
        case_row "$l / breakdown country" "$p/breakdown?$q&by=country"
        case_row "$l / breakdown channel" "$p/breakdown?$q&by=channel"
        case_row "$l / breakdown browser" "$p/breakdown?$q&by=browser"
        case_row "$l / funnel" "$p/funnel?$q"
        case_row "$l / top scans" "$p/top?$q&metric=scans"
        case_row "$l / top earnings" "$p/top?$q&metric=earnings"
    done
done
