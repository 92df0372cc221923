-- Scan-to-use conversion per code over the last 30 days: human scans, the
-- signups and purchases credited to the code (whatever rule credited them),
-- and signups per human scan. Codes without a human scan in the window are
-- left out.
SELECT
    code,
    human_scans,
    signups,
    purchases,
    if(human_scans = 0, 0, round(signups / human_scans, 4)) AS signups_per_scan
FROM
(
    SELECT code, countIf(is_bot = 0) AS human_scans
    FROM scans FINAL
    WHERE ts >= now() - INTERVAL 30 DAY
    GROUP BY code
) AS s
ANY LEFT JOIN
(
    SELECT
        code,
        countIf(kind = 'signup') AS signups,
        countIf(kind = 'purchase') AS purchases
    FROM conversions FINAL
    WHERE occurred >= now() - INTERVAL 30 DAY AND code != ''
    GROUP BY code
) AS c USING code
ORDER BY human_scans DESC, code
