//! Field rules of SPEC §7 that a JSON Schema cannot say: real calendar dates, ordered
//! pairs of fields, and report periods that have begun by the time they are signed.
//! Violations are 400s naming the field.

use serde_json::{Map, Value};

use crate::dates::{self, UnixSeconds};
use crate::entry::Kind;
use crate::reject::FieldError;

/// Body fields holding `YYYY-MM-DD` dates, in any kind.
const DATE_FIELDS: &[&str] = &[
    "announced",
    "effective",
    "date",
    "valid_from",
    "valid_until",
];

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        path: format!("/entry/body/{field}"),
        message: message.into(),
    }
}

fn int(body: &Map<String, Value>, field: &str) -> u64 {
    body.get(field).and_then(Value::as_u64).unwrap_or(0)
}

fn text<'a>(body: &'a Map<String, Value>, field: &str) -> &'a str {
    body.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// Every field-rule violation of a schema-valid body signed at `ts`.
pub fn field_errors(kind: Kind, body: &Map<String, Value>, ts: UnixSeconds) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for field in DATE_FIELDS {
        if let Some(Value::String(d)) = body.get(*field)
            && dates::parse_date(d).is_none()
        {
            errors.push(error(field, format!("{d:?} is not a calendar date")));
        }
    }
    if let Some(Value::String(by)) = body.get("condition").and_then(|c| c.get("by"))
        && dates::parse_date(by).is_none()
    {
        errors.push(error(
            "condition/by",
            format!("{by:?} is not a calendar date"),
        ));
    }
    match kind {
        Kind::OccupancyReport => {
            if int(body, "gpu_hours_voucher") > int(body, "gpu_hours_sold") {
                errors.push(error("gpu_hours_voucher", "must be <= gpu_hours_sold"));
            }
            if int(body, "gpu_hours_sold") > int(body, "gpu_hours_available") {
                errors.push(error("gpu_hours_sold", "must be <= gpu_hours_available"));
            }
        }
        Kind::PowerReport if int(body, "it_kwh") > int(body, "consumed_kwh") => {
            errors.push(error("it_kwh", "must be <= consumed_kwh"));
        }
        Kind::PermitIssue if text(body, "valid_from") > text(body, "valid_until") => {
            errors.push(error("valid_until", "must not be before valid_from"));
        }
        _ => {}
    }
    if matches!(
        kind,
        Kind::PowerReport | Kind::OccupancyReport | Kind::MeterReading
    ) {
        let signed_month = dates::format_instant(ts).unwrap_or_default();
        let signed_month = signed_month.get(..7).unwrap_or_default();
        let period = text(body, "period");
        if period > signed_month {
            errors.push(error(
                "period",
                format!("period {period} had not begun when the entry was signed ({signed_month})"),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(kind: Kind, body: Value) -> Vec<String> {
        let ts = dates::parse_instant("2025-03-05T00:00:00Z").unwrap();
        let Value::Object(body) = body else {
            unreachable!()
        };
        field_errors(kind, &body, ts)
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn table() {
        let cases: Vec<(Kind, Value, Vec<&str>)> = vec![
            (
                Kind::OccupancyReport,
                json!({"period": "2025-02", "gpu_hours_available": 10, "gpu_hours_sold": 5, "gpu_hours_voucher": 5}),
                vec![],
            ),
            (
                Kind::OccupancyReport,
                json!({"period": "2025-02", "gpu_hours_available": 10, "gpu_hours_sold": 11, "gpu_hours_voucher": 12}),
                vec![
                    "/entry/body/gpu_hours_voucher",
                    "/entry/body/gpu_hours_sold",
                ],
            ),
            (
                Kind::OccupancyReport,
                json!({"period": "2025-04", "gpu_hours_available": 1, "gpu_hours_sold": 0, "gpu_hours_voucher": 0}),
                vec!["/entry/body/period"],
            ),
            (Kind::OccupancyReport, json!({"period": "2025-03"}), vec![]),
            (
                Kind::PowerReport,
                json!({"period": "2025-01", "it_kwh": 5, "consumed_kwh": 4}),
                vec!["/entry/body/it_kwh"],
            ),
            (
                Kind::MeterReading,
                json!({"period": "2026-01"}),
                vec!["/entry/body/period"],
            ),
            (
                Kind::PermitIssue,
                json!({"valid_from": "2025-02-01", "valid_until": "2025-01-31"}),
                vec!["/entry/body/valid_until"],
            ),
            (
                Kind::Procurement,
                json!({"date": "2025-02-29"}),
                vec!["/entry/body/date"],
            ),
            (
                Kind::SubsidyGrant,
                json!({"date": "2024-02-29", "condition": {"min_utilization_pct": 5, "by": "2025-04-31"}}),
                vec!["/entry/body/condition/by"],
            ),
        ];
        for (kind, body, want) in cases {
            assert_eq!(check(kind, body.clone()), want, "{kind} {body}");
        }
    }
}
