# Sourced by bench.sh and ab.sh: the requests they send and what a run of
# the gateway cost. The caller defines die and TMP (a temp dir).

# What a phone's browser sends on a navigation (iPhone Safari), so the
# gateway records human scans (without these headers a scan is a suspect).
BROWSER_HEADERS=(
    -H "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
    -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    -H "Accept-Language: en-US,en;q=0.9"
    -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Dest: document" -H "Sec-Fetch-Site: none"
)

# cpu_seconds PID: CPU seconds (user + system, every thread) PID has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# drained URL: until the gateway at URL has written (or spooled) every scan
# its recorder queued, in every sink: at most 120 s.
drained() {
    local i q w
    for ((i = 0; i < 1200; i++)); do
        curl -s --max-time 5 "$1/metrics" >"$TMP/metrics.txt" || true
        q="$(awk '$1 == "codelink_scans_queued_total" { print $2 }' "$TMP/metrics.txt")"
        # The sink furthest behind: written + spooled, per sink.
        w="$(awk '$1 ~ /^codelink_scans_(written|spooled)_total\{sink=/ { split($1, a, "\""); n[a[2]] += $2 }
                 END { m = -1; for (k in n) if (m < 0 || n[k] < m) m = n[k]; print m }' "$TMP/metrics.txt")"
        [[ -n "$q" && -n "$w" ]] && ((w >= q)) && return 0
        sleep 0.1
    done
    die "the recorder of $1 did not catch up within 120 s (queued $q, written $w)"
}

# stats "x1 x2 ...": "min / median / max".
stats() {
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s / %s / %s", v[1], m, v[NR]
    }'
}
