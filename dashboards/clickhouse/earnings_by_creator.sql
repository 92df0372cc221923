-- Earnings per creator (the owner credited with each conversion) and currency,
-- all time: estimated while a conversion is younger than the hold period
-- (30 days, the gateway's default --hold-days; change both numbers together),
-- confirmed after. Refunds carry negative earnings, so the sums are net.
SELECT
    owner,
    earnings_currency AS currency,
    countIf(kind = 'signup') AS signups,
    countIf(kind = 'purchase') AS purchases,
    countIf(kind = 'refund') AS refunds,
    sumIf(earnings, occurred > now() - INTERVAL 30 DAY) AS estimated,
    sumIf(earnings, occurred <= now() - INTERVAL 30 DAY) AS confirmed
FROM conversions FINAL
WHERE owner != '' AND earnings_currency != ''
GROUP BY owner, currency
ORDER BY owner, currency
