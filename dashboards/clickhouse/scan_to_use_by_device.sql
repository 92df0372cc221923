-- Scan-to-use conversion per device class (mobile, tablet, desktop, ...) and
-- in-app browser over the last 30 days: human scans, and the signups whose
-- attributed scan came from that device. Signups credited without a scan
-- (code only, unattributed) have no device and are not counted here. The
-- attributed scan is looked up by its id however old it is (attribution
-- windows are set per code); each signup counts once, also when two signups
-- name the same scan.
SELECT
    device,
    in_app,
    human_scans,
    signups,
    if(human_scans = 0, 0, round(signups / human_scans, 4)) AS signups_per_scan
FROM
(
    SELECT device, in_app, countIf(is_bot = 0) AS human_scans
    FROM scans FINAL
    WHERE ts >= now() - INTERVAL 30 DAY
    GROUP BY device, in_app
) AS s
ANY LEFT JOIN
(
    SELECT device, in_app, count() AS signups
    FROM
    (
        SELECT scan_id
        FROM conversions FINAL
        WHERE kind = 'signup' AND scan_id != '' AND occurred >= now() - INTERVAL 30 DAY
    ) AS c
    ALL INNER JOIN
    (
        SELECT scan_id, device, in_app
        FROM scans FINAL
        WHERE scan_id IN
        (
            SELECT scan_id
            FROM conversions FINAL
            WHERE kind = 'signup' AND scan_id != '' AND occurred >= now() - INTERVAL 30 DAY
        )
    ) AS a USING scan_id
    GROUP BY device, in_app
) AS u USING device, in_app
ORDER BY human_scans DESC, device, in_app
