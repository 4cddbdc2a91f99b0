-- The twenty audit rules of PROTOCOL §8 over a Parquet export (PROTOCOL §12.4).
--
-- Run it with DuckDB from the export directory, after naming the month to audit as of:
--
--     cd EXPORT_DIR && printf "SET VARIABLE as_of = '2025-03';\n.read ../sql/audit.sql\n" | duckdb
--
-- The last statement yields one row per finding: rule, severity, facility_id, key. It
-- finds what `dcledger audit --as-of M` finds under the default configuration (the
-- thresholds and reference prices below are those of src/config.default.toml; change
-- them in `thresholds` and `reference_prices`). It reads the tables of the record kinds
-- and never findings.parquet, the audit's own answer, which it is meant to reproduce.
--
-- Written in plain SQL so that it ports to Spark SQL or Trino. The DuckDB-specific bits
-- are marked "DuckDB:" with their equivalents; they are: reading a file as a view,
-- getvariable, two macros for calendar arithmetic, generate_series, and UNNEST in FROM
-- (which Trino shares). Months are kept as the DATE of their first day and written back
-- as 'YYYY-MM' (the first 7 characters of the date's text) where they are a finding's
-- key. Every sum of figures is taken as DECIMAL(38,0), so that no total wraps.
--
-- Definitions (PROTOCOL §8) in one place each: the report that counts (the last one
-- accepted), status at a date (status_spans), GPUs at a facility (gpu_moves), permit
-- validity and coverage (permit_spans, permit_coverage), the window (params).

-- ---------------------------------------------------------------------------------------
-- Calendar helpers. DuckDB: macros. Spark has add_months and date_sub built in (Spark 3
-- clamps the day as these do); Trino: date_add('month', n, d) and date_add('day', -n, d).

-- d moved by n calendar months, the day clamped to the target month's length.
CREATE OR REPLACE TEMPORARY MACRO add_months(d, n) AS CAST(d + to_months(CAST(n AS INTEGER)) AS DATE);
-- The date n days before d.
CREATE OR REPLACE TEMPORARY MACRO days_before(d, n) AS CAST(d - to_days(CAST(n AS INTEGER)) AS DATE);

-- ---------------------------------------------------------------------------------------
-- The tables of the export. DuckDB: read_parquet. Spark: CREATE TEMPORARY VIEW x USING
-- parquet OPTIONS (path 'x.parquet'); Trino: an external table over each file.

CREATE OR REPLACE TEMPORARY VIEW facility_register AS SELECT * FROM read_parquet('facility.register.parquet');
CREATE OR REPLACE TEMPORARY VIEW facility_status AS SELECT * FROM read_parquet('facility.status.parquet');
CREATE OR REPLACE TEMPORARY VIEW facility_transfer AS SELECT * FROM read_parquet('facility.transfer.parquet');
CREATE OR REPLACE TEMPORARY VIEW procurement AS SELECT * FROM read_parquet('procurement.parquet');
CREATE OR REPLACE TEMPORARY VIEW lot_serials AS SELECT * FROM read_parquet('lot.serials.parquet');
CREATE OR REPLACE TEMPORARY VIEW deployment AS SELECT * FROM read_parquet('deployment.parquet');
CREATE OR REPLACE TEMPORARY VIEW lot_transfer AS SELECT * FROM read_parquet('lot.transfer.parquet');
CREATE OR REPLACE TEMPORARY VIEW permit_issue AS SELECT * FROM read_parquet('permit.issue.parquet');
CREATE OR REPLACE TEMPORARY VIEW permit_revoke AS SELECT * FROM read_parquet('permit.revoke.parquet');
CREATE OR REPLACE TEMPORARY VIEW subsidy_grant AS SELECT * FROM read_parquet('subsidy.grant.parquet');
CREATE OR REPLACE TEMPORARY VIEW subsidy_disburse AS SELECT * FROM read_parquet('subsidy.disburse.parquet');
CREATE OR REPLACE TEMPORARY VIEW loan_issue AS SELECT * FROM read_parquet('loan.issue.parquet');
CREATE OR REPLACE TEMPORARY VIEW power_report AS SELECT * FROM read_parquet('power.report.parquet');
CREATE OR REPLACE TEMPORARY VIEW meter_reading AS SELECT * FROM read_parquet('meter.reading.parquet');
CREATE OR REPLACE TEMPORARY VIEW occupancy_report AS SELECT * FROM read_parquet('occupancy.report.parquet');
CREATE OR REPLACE TEMPORARY VIEW inspection_report AS SELECT * FROM read_parquet('inspection.report.parquet');

-- ---------------------------------------------------------------------------------------
-- Thresholds: the defaults of src/config.default.toml ([audit]).

CREATE OR REPLACE TEMPORARY VIEW thresholds AS
SELECT
    6 AS window_months,
    30 AS idle_utilization_pct,
    12 AS stalled_months,
    50 AS voucher_share_pct,
    30 AS resale_share_pct,
    12 AS land_banking_months,
    90 AS undeployed_days,
    150 AS price_high_pct,
    50 AS price_low_pct,
    5 AS subsidised_sale_years,
    50 AS min_it_share_pct,
    1000 AS kwh_per_gpu_hour_milli,
    10 AS meter_tolerance_pct,
    90 AS inspection_min_pct,
    3 AS condition_months,
    105 AS pue_min_centi,
    200 AS pue_max_centi;

-- Reference prices, whole CNY per GPU (PROTOCOL §8.1; [audit.reference_prices.MODEL]).
CREATE OR REPLACE TEMPORARY VIEW reference_prices AS
SELECT * FROM (VALUES
    ('H100', 2023, 220000), ('H100', 2024, 200000), ('H100', 2025, 160000), ('H100', 2026, 130000),
    ('H800', 2023, 200000), ('H800', 2024, 180000), ('H800', 2025, 140000), ('H800', 2026, 110000),
    ('A100', 2023, 120000), ('A100', 2024, 100000), ('A100', 2025, 80000), ('A100', 2026, 60000),
    ('H20', 2023, 110000), ('H20', 2024, 100000), ('H20', 2025, 90000), ('H20', 2026, 80000),
    ('Ascend-910B', 2023, 120000), ('Ascend-910B', 2024, 110000), ('Ascend-910B', 2025, 100000),
    ('Ascend-910B', 2026, 90000)
) AS t(gpu_model, year, price_cny);

-- ---------------------------------------------------------------------------------------
-- as_of: its first day, its last day ("as_of as a date"), and the window's first month.
-- DuckDB: getvariable. Spark: ${as_of} with spark.sql.variable.substitute; Trino: a
-- literal, or a prepared statement's parameter.

CREATE OR REPLACE TEMPORARY VIEW params AS
SELECT
    p.as_of_month,
    last_day(p.as_of_month) AS as_of_end,
    add_months(p.as_of_month, 1 - t.window_months) AS window_first
FROM (SELECT CAST(CAST(getvariable('as_of') AS VARCHAR) || '-01' AS DATE) AS as_of_month) AS p
CROSS JOIN thresholds AS t;

-- ---------------------------------------------------------------------------------------
-- Reports: for each facility, series and period, the one accepted last (PROTOCOL §6.5),
-- for periods up to as_of. `month` is the period's first day.

CREATE OR REPLACE TEMPORARY VIEW power AS
SELECT facility_id, month, period,
       CAST(consumed_kwh AS DECIMAL(38,0)) AS consumed_kwh,
       CAST(it_kwh AS DECIMAL(38,0)) AS it_kwh,
       CAST(resold_kwh AS DECIMAL(38,0)) AS resold_kwh
FROM (
    SELECT r.*, CAST(r.period || '-01' AS DATE) AS month,
           ROW_NUMBER() OVER (PARTITION BY r.facility_id, r.period ORDER BY r.index DESC) AS latest
    FROM power_report AS r
) AS x
CROSS JOIN params
WHERE latest = 1 AND month <= params.as_of_month;

CREATE OR REPLACE TEMPORARY VIEW meter AS
SELECT facility_id, month,
       CAST(consumed_kwh AS DECIMAL(38,0)) AS consumed_kwh,
       CAST(resold_kwh AS DECIMAL(38,0)) AS resold_kwh
FROM (
    SELECT r.*, CAST(r.period || '-01' AS DATE) AS month,
           ROW_NUMBER() OVER (PARTITION BY r.facility_id, r.period ORDER BY r.index DESC) AS latest
    FROM meter_reading AS r
) AS x
CROSS JOIN params
WHERE latest = 1 AND month <= params.as_of_month;

CREATE OR REPLACE TEMPORARY VIEW occupancy AS
SELECT facility_id, month, period,
       CAST(gpus_installed AS DECIMAL(38,0)) AS gpus_installed,
       CAST(gpu_hours_available AS DECIMAL(38,0)) AS available,
       CAST(gpu_hours_sold AS DECIMAL(38,0)) AS sold,
       CAST(gpu_hours_voucher AS DECIMAL(38,0)) AS voucher
FROM (
    SELECT r.*, CAST(r.period || '-01' AS DATE) AS month,
           ROW_NUMBER() OVER (PARTITION BY r.facility_id, r.period ORDER BY r.index DESC) AS latest
    FROM occupancy_report AS r
) AS x
CROSS JOIN params
WHERE latest = 1 AND month <= params.as_of_month;

-- The months the per-period rules examine: those with a power or an occupancy report.
CREATE OR REPLACE TEMPORARY VIEW reported_months AS
SELECT facility_id, month FROM power
UNION
SELECT facility_id, month FROM occupancy;

-- ---------------------------------------------------------------------------------------
-- Status at a date: among statuses effective on or before it, the latest effective (ties:
-- the later entry); `announced` before any. Each span runs from a day's last status to
-- the next day with a status (span_next, exclusive; NULL: open).

CREATE OR REPLACE TEMPORARY VIEW status_days AS
SELECT facility_id, effective, status
FROM (
    SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.facility_id, s.effective ORDER BY s.index DESC) AS last_of_day
    FROM facility_status AS s
) AS x
WHERE last_of_day = 1;

CREATE OR REPLACE TEMPORARY VIEW status_spans AS
SELECT facility_id, status, effective AS span_from,
       LEAD(effective) OVER (PARTITION BY facility_id ORDER BY effective) AS span_next
FROM status_days;

-- ---------------------------------------------------------------------------------------
-- GPUs arriving at (+) or leaving (-) a facility (PROTOCOL §7.4): GPUs at a facility on a
-- date sum those dated on or before it.

CREATE OR REPLACE TEMPORARY VIEW gpu_moves AS
SELECT facility_id, date, CAST(quantity AS DECIMAL(38,0)) AS delta FROM deployment
UNION ALL
SELECT to_facility, date, CAST(quantity AS DECIMAL(38,0)) FROM lot_transfer WHERE to_facility IS NOT NULL
UNION ALL
SELECT from_facility, date, -CAST(quantity AS DECIMAL(38,0)) FROM lot_transfer WHERE from_facility IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- Valid permits: from valid_from through valid_until, but not from the earliest
-- revocation's effective date on; permits valid on no day are left out.

CREATE OR REPLACE TEMPORARY VIEW permit_spans AS
SELECT facility_id, kind, valid_from, valid_to
FROM (
    SELECT p.facility_id, p.kind, p.valid_from,
           CASE WHEN r.first_revoked IS NOT NULL AND days_before(r.first_revoked, 1) < p.valid_until
                THEN days_before(r.first_revoked, 1) ELSE p.valid_until END AS valid_to
    FROM permit_issue AS p
    LEFT JOIN (SELECT permit_id, MIN(effective) AS first_revoked FROM permit_revoke GROUP BY permit_id) AS r
        ON r.permit_id = p.permit_id
) AS x
WHERE valid_from <= valid_to;

-- Each day of each reported month. DuckDB: generate_series and UNNEST; Spark:
-- explode(sequence(month, last_day(month))); Trino: UNNEST(sequence(...)).
CREATE OR REPLACE TEMPORARY VIEW reported_days AS
SELECT m.facility_id, m.month, CAST(d.day AS DATE) AS day
FROM reported_months AS m
CROSS JOIN UNNEST(generate_series(m.month, last_day(m.month), INTERVAL 1 DAY)) AS d(day);

-- A month is covered by a permit kind when every one of its days has a valid permit of
-- that kind.
CREATE OR REPLACE TEMPORARY VIEW permit_coverage AS
SELECT facility_id, month, kind
FROM (
    SELECT d.facility_id, d.month, s.kind, COUNT(DISTINCT d.day) AS days_covered
    FROM reported_days AS d
    JOIN permit_spans AS s
        ON s.facility_id = d.facility_id AND s.valid_from <= d.day AND d.day <= s.valid_to
    GROUP BY d.facility_id, d.month, s.kind
) AS x
WHERE days_covered = day(last_day(month));

-- ---------------------------------------------------------------------------------------
-- Subsidy disbursements with their grant's facility and purpose, dated up to as_of.

CREATE OR REPLACE TEMPORARY VIEW disbursed AS
SELECT g.facility_id, g.subsidy_id, g.purpose, d.date, CAST(d.amount_minor AS DECIMAL(38,0)) AS amount_minor
FROM subsidy_disburse AS d
JOIN subsidy_grant AS g ON g.subsidy_id = d.subsidy_id
CROSS JOIN params
WHERE d.date <= params.as_of_end;

-- Occupancy totals over the window.
CREATE OR REPLACE TEMPORARY VIEW window_occupancy AS
SELECT o.facility_id, SUM(o.sold) AS sold, SUM(o.available) AS available, SUM(o.voucher) AS voucher
FROM occupancy AS o CROSS JOIN params
WHERE o.month >= params.window_first
GROUP BY o.facility_id;

-- ---------------------------------------------------------------------------------------
-- The rules, in PROTOCOL §8's order: each yields (rule, facility_id, key).

CREATE OR REPLACE TEMPORARY VIEW rule_findings AS

-- idle-funded: disbursed to, operational at as_of, window utilization defined and low.
SELECT 'idle-funded' AS rule, f.facility_id, '' AS key
FROM (SELECT DISTINCT facility_id FROM disbursed) AS f
JOIN window_occupancy AS w ON w.facility_id = f.facility_id
JOIN status_spans AS s ON s.facility_id = f.facility_id
CROSS JOIN params CROSS JOIN thresholds AS t
WHERE s.span_from <= params.as_of_end AND (s.span_next IS NULL OR params.as_of_end < s.span_next)
  AND s.status = 'operational'
  AND w.available > 0
  AND w.sold * 100 < t.idle_utilization_pct * w.available

UNION ALL
-- stalled-funded: a disbursement stalled_months or more before as_of, never operational.
SELECT 'stalled-funded', d.facility_id, ''
FROM disbursed AS d CROSS JOIN params CROSS JOIN thresholds AS t
WHERE d.date <= add_months(params.as_of_end, -t.stalled_months)
  AND NOT EXISTS (
      SELECT 1 FROM status_days AS s
      WHERE s.facility_id = d.facility_id AND s.effective <= params.as_of_end AND s.status = 'operational')

UNION ALL
-- voucher-dependence: window voucher hours over the share of sold hours.
SELECT 'voucher-dependence', w.facility_id, ''
FROM window_occupancy AS w CROSS JOIN thresholds AS t
WHERE w.sold > 0 AND t.voucher_share_pct * w.sold < w.voucher * 100

UNION ALL
-- power-resale: window resold kWh over the share of consumed + resold.
SELECT 'power-resale', p.facility_id, ''
FROM (
    SELECT p.facility_id, SUM(p.resold_kwh) AS resold, SUM(p.consumed_kwh) + SUM(p.resold_kwh) AS base
    FROM power AS p CROSS JOIN params
    WHERE p.month >= params.window_first
    GROUP BY p.facility_id
) AS p CROSS JOIN thresholds AS t
WHERE p.base > 0 AND t.resale_share_pct * p.base < p.resold * 100

UNION ALL
-- resale-without-permit: power resold in a month not wholly covered by power_sale permits.
SELECT 'resale-without-permit', p.facility_id, p.period
FROM power AS p
WHERE p.resold_kwh > 0
  AND NOT EXISTS (
      SELECT 1 FROM permit_coverage AS c
      WHERE c.facility_id = p.facility_id AND c.month = p.month AND c.kind = 'power_sale')

UNION ALL
-- land-banking: a land-use permit, a state-backed loan land_banking_months old, and in
-- those months neither a valid construction permit nor construction or operation.
SELECT 'land-banking', l.facility_id, l.loan_id
FROM (
    SELECT l.*, add_months(l.date, t.land_banking_months) AS until
    FROM loan_issue AS l CROSS JOIN thresholds AS t
    WHERE l.state_backed
) AS l CROSS JOIN params
WHERE l.until <= params.as_of_end
  AND EXISTS (
      SELECT 1 FROM permit_issue AS p
      WHERE p.facility_id = l.facility_id AND p.kind = 'land_use' AND p.valid_from <= params.as_of_end)
  AND NOT EXISTS (
      SELECT 1 FROM permit_spans AS p
      WHERE p.facility_id = l.facility_id AND p.kind = 'construction'
        AND p.valid_from <= l.until AND p.valid_to >= l.date)
  AND NOT EXISTS (
      SELECT 1 FROM status_spans AS s
      WHERE s.facility_id = l.facility_id AND s.status IN ('under_construction', 'operational')
        AND s.span_from <= l.until AND (s.span_next IS NULL OR s.span_next > l.date))

UNION ALL
-- undeployed-gpus: a lot procured more than undeployed_days before as_of with stock left
-- at as_of (deployments and transfers from stock, dated up to as_of, take from it).
SELECT 'undeployed-gpus', p.facility_id, p.lot_id
FROM procurement AS p CROSS JOIN params CROSS JOIN thresholds AS t
WHERE p.date < days_before(params.as_of_end, t.undeployed_days)
  AND CAST(p.quantity AS DECIMAL(38,0)) > COALESCE((
      SELECT SUM(CAST(m.quantity AS DECIMAL(38,0)))
      FROM (
          SELECT lot_id, quantity, date FROM deployment
          UNION ALL
          SELECT lot_id, quantity, date FROM lot_transfer WHERE from_facility IS NULL
      ) AS m
      WHERE m.lot_id = p.lot_id AND m.date <= params.as_of_end), 0)

UNION ALL
-- phantom-capacity: more GPUs reported installed than the ledger places there on the
-- month's last day, or more GPU-hours available than installed GPUs have.
SELECT 'phantom-capacity', o.facility_id, o.period
FROM occupancy AS o
WHERE o.gpus_installed > COALESCE((
          SELECT SUM(g.delta) FROM gpu_moves AS g
          WHERE g.facility_id = o.facility_id AND g.date <= last_day(o.month)), 0)
   OR o.available > o.gpus_installed * 24 * day(last_day(o.month))

UNION ALL
-- duplicate-serial: a serial listed by two different lots procured up to as_of; the
-- finding names the facility of the later lot (by procurement date, then entry).
-- DuckDB and Trino: CROSS JOIN UNNEST; Spark: LATERAL VIEW explode(s.serials) u AS serial.
SELECT 'duplicate-serial', facility_id, serial
FROM (
    SELECT u.serial, p.facility_id,
           COUNT(DISTINCT p.lot_id) OVER (PARTITION BY u.serial) AS lots,
           ROW_NUMBER() OVER (PARTITION BY u.serial ORDER BY p.date DESC, p.index DESC) AS newest
    FROM lot_serials AS s
    CROSS JOIN UNNEST(s.serials) AS u(serial)
    JOIN procurement AS p ON p.lot_id = s.lot_id
    CROSS JOIN params
    WHERE p.date <= params.as_of_end
) AS x
WHERE lots >= 2 AND newest = 1

UNION ALL
-- double-pledge: one collateral item of two loans dated up to as_of; the finding names
-- the facility of the later loan (by date, then entry).
SELECT 'double-pledge', facility_id, item
FROM (
    SELECT c.item, l.facility_id,
           COUNT(DISTINCT l.loan_id) OVER (PARTITION BY c.item) AS loans,
           ROW_NUMBER() OVER (PARTITION BY c.item ORDER BY l.date DESC, l.index DESC) AS newest
    FROM loan_issue AS l
    CROSS JOIN UNNEST(l.collateral) AS c(item)
    CROSS JOIN params
    WHERE l.date <= params.as_of_end
) AS x
WHERE loans >= 2 AND newest = 1

UNION ALL
-- price-anomaly: a CNY unit price far above or below the reference for its model and the
-- year of its date (the nearest year in the table; on a tie, the earlier).
SELECT 'price-anomaly', facility_id, lot_id
FROM (
    SELECT p.facility_id, p.lot_id, CAST(p.unit_price_minor AS DECIMAL(38,0)) AS price,
           CAST(r.price_cny AS DECIMAL(38,0)) * 100 AS reference_minor,
           ROW_NUMBER() OVER (PARTITION BY p.lot_id ORDER BY abs(r.year - year(p.date)), r.year) AS nearest
    FROM procurement AS p
    JOIN reference_prices AS r ON r.gpu_model = p.gpu_model
    CROSS JOIN params
    WHERE p.currency = 'CNY' AND p.date <= params.as_of_end
) AS x CROSS JOIN thresholds AS t
WHERE nearest = 1
  AND (t.price_high_pct * reference_minor < price * 100 OR price * 100 < t.price_low_pct * reference_minor)

UNION ALL
-- subsidy-stacking: CNY equipment grants up to as_of over the value of the CNY lots
-- procured for the facility up to as_of.
SELECT 'subsidy-stacking', g.facility_id, ''
FROM (
    SELECT g.facility_id, SUM(CAST(g.amount_minor AS DECIMAL(38,0))) AS granted
    FROM subsidy_grant AS g CROSS JOIN params
    WHERE g.purpose = 'equipment' AND g.currency = 'CNY' AND g.date <= params.as_of_end
    GROUP BY g.facility_id
) AS g CROSS JOIN params
WHERE g.granted > COALESCE((
    SELECT SUM(CAST(p.quantity AS DECIMAL(38,0)) * CAST(p.unit_price_minor AS DECIMAL(38,0)))
    FROM procurement AS p
    WHERE p.facility_id = g.facility_id AND p.currency = 'CNY' AND p.date <= params.as_of_end), 0)

UNION ALL
-- subsidised-asset-sold: GPUs of a lot procured for the facility sold to an organisation,
-- or the facility itself transferred (key ''), within subsidised_sale_years after an
-- equipment or construction disbursement to it.
SELECT 'subsidised-asset-sold', s.facility_id, s.key
FROM (
    SELECT p.facility_id, p.lot_id AS key, t.date
    FROM lot_transfer AS t JOIN procurement AS p ON p.lot_id = t.lot_id
    WHERE t.to_org IS NOT NULL
    UNION ALL
    SELECT facility_id, '', date FROM facility_transfer
) AS s CROSS JOIN params CROSS JOIN thresholds AS t
WHERE s.date <= params.as_of_end
  AND EXISTS (
      SELECT 1 FROM disbursed AS d
      WHERE d.facility_id = s.facility_id AND d.purpose IN ('equipment', 'construction')
        AND d.date <= s.date AND s.date <= add_months(d.date, 12 * t.subsidised_sale_years))

UNION ALL
-- reporting-gap: operational on the first and the last day of a window month, without
-- its occupancy or its power report. DuckDB: generate_series over months; Spark:
-- explode(sequence(window_first, as_of_month, interval 1 month)); Trino: UNNEST(sequence).
SELECT 'reporting-gap', f.facility_id, substr(CAST(m.month AS VARCHAR), 1, 7)
FROM facility_register AS f
CROSS JOIN (
    SELECT CAST(w.month_start AS DATE) AS month
    FROM params
    CROSS JOIN UNNEST(generate_series(params.window_first, params.as_of_month, INTERVAL 1 MONTH)) AS w(month_start)
) AS m
WHERE EXISTS (
      SELECT 1 FROM status_spans AS s
      WHERE s.facility_id = f.facility_id AND s.status = 'operational'
        AND s.span_from <= m.month AND (s.span_next IS NULL OR m.month < s.span_next))
  AND EXISTS (
      SELECT 1 FROM status_spans AS s
      WHERE s.facility_id = f.facility_id AND s.status = 'operational'
        AND s.span_from <= last_day(m.month) AND (s.span_next IS NULL OR last_day(m.month) < s.span_next))
  AND (NOT EXISTS (SELECT 1 FROM occupancy AS o WHERE o.facility_id = f.facility_id AND o.month = m.month)
    OR NOT EXISTS (SELECT 1 FROM power AS p WHERE p.facility_id = f.facility_id AND p.month = m.month))

UNION ALL
-- permit-missing: GPU-hours sold in a month not wholly covered by operation permits.
SELECT 'permit-missing', o.facility_id, o.period
FROM occupancy AS o
WHERE o.sold > 0
  AND NOT EXISTS (
      SELECT 1 FROM permit_coverage AS c
      WHERE c.facility_id = o.facility_id AND c.month = o.month AND c.kind = 'operation')

UNION ALL
-- power-occupancy-mismatch: IT energy below min_it_share_pct of what the sold GPU-hours
-- need at kwh_per_gpu_hour_milli thousandths of a kWh each.
SELECT 'power-occupancy-mismatch', p.facility_id, p.period
FROM power AS p
JOIN occupancy AS o ON o.facility_id = p.facility_id AND o.month = p.month
CROSS JOIN thresholds AS t
WHERE p.it_kwh * 100000 < t.min_it_share_pct * t.kwh_per_gpu_hour_milli * o.sold

UNION ALL
-- meter-mismatch: the utility's and the operator's consumed or resold kWh differ by more
-- than meter_tolerance_pct of the larger.
SELECT 'meter-mismatch', p.facility_id, p.period
FROM power AS p
JOIN meter AS m ON m.facility_id = p.facility_id AND m.month = p.month
CROSS JOIN thresholds AS t
WHERE t.meter_tolerance_pct * greatest(m.consumed_kwh, p.consumed_kwh) < abs(m.consumed_kwh - p.consumed_kwh) * 100
   OR t.meter_tolerance_pct * greatest(m.resold_kwh, p.resold_kwh) < abs(m.resold_kwh - p.resold_kwh) * 100

UNION ALL
-- inspection-shortfall: fewer GPUs counted than inspection_min_pct of those the ledger
-- places at the facility on the inspection's date, where it places any.
SELECT 'inspection-shortfall', facility_id, CAST(date AS VARCHAR)
FROM (
    SELECT i.facility_id, i.date, CAST(i.gpus_counted AS DECIMAL(38,0)) AS counted,
           COALESCE((SELECT SUM(g.delta) FROM gpu_moves AS g
                     WHERE g.facility_id = i.facility_id AND g.date <= i.date), 0) AS recorded
    FROM inspection_report AS i CROSS JOIN params
    WHERE i.date <= params.as_of_end
) AS x CROSS JOIN thresholds AS t
WHERE recorded > 0 AND counted * 100 < t.inspection_min_pct * recorded

UNION ALL
-- subsidy-condition-breach: a disbursed subsidy whose condition's date has passed, and
-- utilization over the condition_months ending with that date's month below its minimum
-- (no reports, or no available hours, count as 0%).
SELECT 'subsidy-condition-breach', facility_id, subsidy_id
FROM (
    SELECT g.facility_id, g.subsidy_id, g.min_pct, SUM(o.sold) AS sold, SUM(o.available) AS available
    FROM (
        SELECT c.facility_id, c.subsidy_id, c.min_pct, c.by_month AS last_month,
               add_months(c.by_month, 1 - t.condition_months) AS first_month
        FROM (
            SELECT g.facility_id, g.subsidy_id, g.condition.min_utilization_pct AS min_pct,
                   CAST(substr(CAST(g.condition.by AS VARCHAR), 1, 7) || '-01' AS DATE) AS by_month
            FROM subsidy_grant AS g CROSS JOIN params
            WHERE g.condition IS NOT NULL AND g.condition.by <= params.as_of_end
              AND EXISTS (SELECT 1 FROM disbursed AS d WHERE d.subsidy_id = g.subsidy_id)
        ) AS c CROSS JOIN thresholds AS t
    ) AS g
    LEFT JOIN occupancy AS o
        ON o.facility_id = g.facility_id AND o.month >= g.first_month AND o.month <= g.last_month
    GROUP BY g.facility_id, g.subsidy_id, g.min_pct
) AS x
WHERE CASE WHEN available IS NULL OR available = 0 THEN 0 < min_pct
           ELSE sold * 100 < min_pct * available END

UNION ALL
-- pue-implausible: consumed / IT energy outside [pue_min_centi, pue_max_centi] / 100; no
-- IT energy with some consumed counts as too high.
SELECT 'pue-implausible', p.facility_id, p.period
FROM power AS p CROSS JOIN thresholds AS t
WHERE CASE WHEN p.it_kwh = 0 THEN p.consumed_kwh > 0
           ELSE p.consumed_kwh * 100 < t.pue_min_centi * p.it_kwh
             OR t.pue_max_centi * p.it_kwh < p.consumed_kwh * 100 END;

-- ---------------------------------------------------------------------------------------
-- One finding per (rule, facility, key) (PROTOCOL §8: drafts with the same three merge),
-- by facility, rule and key.

SELECT DISTINCT r.rule,
       CASE r.rule
           WHEN 'duplicate-serial' THEN 'critical' WHEN 'double-pledge' THEN 'critical'
           WHEN 'voucher-dependence' THEN 'medium' WHEN 'undeployed-gpus' THEN 'medium'
           WHEN 'price-anomaly' THEN 'medium' WHEN 'subsidised-asset-sold' THEN 'medium'
           WHEN 'reporting-gap' THEN 'medium' WHEN 'pue-implausible' THEN 'low'
           ELSE 'high' END AS severity,
       r.facility_id, r.key
FROM rule_findings AS r
ORDER BY r.facility_id, r.rule, r.key;
