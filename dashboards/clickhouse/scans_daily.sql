-- Scans per day (UTC), code and channel over the last 30 days: human and bot
-- scans, QR scans and unique visitors (a visitor counted once per day, code
-- and channel). FINAL collapses a scan replayed from the gateway's spool.
SELECT
    toDate(ts, 'UTC') AS day,
    code,
    channel,
    countIf(is_bot = 0) AS human_scans,
    countIf(is_bot != 0) AS bot_scans,
    countIf(is_bot = 0 AND source = 'qr') AS qr_scans,
    uniqExactIf(visitor_id, is_bot = 0) AS unique_visitors
FROM scans FINAL
WHERE ts >= now() - INTERVAL 30 DAY
GROUP BY day, code, channel
ORDER BY day, code, channel
