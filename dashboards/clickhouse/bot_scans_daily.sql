-- Bot scans per day (UTC) and reason over the last 30 days: `ua:<name>` for a
-- known crawler or link-preview fetcher, `head`, `prefetch`, or `rate` (over
-- the per-IP scan rate). Bot scans are redirected and kept, never counted as
-- human scans.
SELECT
    toDate(ts, 'UTC') AS day,
    bot_reason,
    count() AS scans,
    uniqExact(code) AS codes
FROM scans FINAL
WHERE is_bot != 0 AND ts >= now() - INTERVAL 30 DAY
GROUP BY day, bot_reason
ORDER BY day, scans DESC, bot_reason
