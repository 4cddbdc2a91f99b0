//! Field rules of PROTOCOL §2, §6, §7 and §9 that a JSON Schema cannot say: real calendar
//! dates and months in 1970–9999, ordered pairs of fields, report periods that have begun
//! by the time they are signed, `key.grant` keys that can sign, and the reserved province.
//! Violations are 400s naming the field.

use serde_json::{Map, Value};

use crate::dates::{self, Month, UnixSeconds};
use crate::entry::Kind;
use crate::keys;
use crate::reject::FieldError;

/// The region of the national report (PROTOCOL §9). No facility is registered in a province
/// of that name, so a province's report can never be mistaken for it.
pub const NATIONAL: &str = "national";

/// Body fields holding `YYYY-MM-DD` dates, in any kind (`condition.by` is nested).
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

/// A field the kind's schema requires as an integer; its absence is an error that says
/// so (the body was not schema-checked), never a zero.
fn int(body: &Map<String, Value>, field: &str) -> Result<u64, FieldError> {
    body.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| error(field, "must be an integer from 0 to 2^53-1"))
}

/// A field the kind's schema requires as a string; see `int`.
fn text<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| error(field, "must be a string"))
}

/// `Ok(true)` where `smaller` exceeds `larger`.
fn exceeds(body: &Map<String, Value>, smaller: &str, larger: &str) -> Result<bool, FieldError> {
    Ok(int(body, smaller)? > int(body, larger)?)
}

/// Every field-rule violation of a schema-valid body signed at `ts`.
pub fn field_errors(kind: Kind, body: &Map<String, Value>, ts: UnixSeconds) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for field in DATE_FIELDS {
        if let Some(Value::String(d)) = body.get(*field)
            && let Err(e) = dates::date(d)
        {
            errors.push(error(field, e.to_string()));
        }
    }
    if let Some(Value::String(by)) = body.get("condition").and_then(|c| c.get("by"))
        && let Err(e) = dates::date(by)
    {
        errors.push(error("condition/by", e.to_string()));
    }
    if let Err(e) = kind_rules(kind, body, ts, &mut errors) {
        errors.push(e);
    }
    errors
}

/// The rules of one kind; a field the schema requires but the body lacks ends them
/// with an error naming it.
fn kind_rules(
    kind: Kind,
    body: &Map<String, Value>,
    ts: UnixSeconds,
    errors: &mut Vec<FieldError>,
) -> Result<(), FieldError> {
    if matches!(
        kind,
        Kind::PowerReport | Kind::OccupancyReport | Kind::MeterReading
    ) {
        let signed =
            Month::of_instant(ts).map_err(|e| error("period", format!("the entry's ts: {e}")))?;
        let period =
            Month::checked(text(body, "period")?).map_err(|e| error("period", e.to_string()))?;
        if period > signed {
            errors.push(error(
                "period",
                format!("period {period} had not begun when the entry was signed ({signed})"),
            ));
        }
    }
    match kind {
        Kind::KeyGrant => {
            let pk = text(body, "public_key")?;
            let pk = keys::parse_public_hex(pk)
                .ok_or_else(|| error("public_key", "must be 64 lowercase hex digits"))?;
            if let Err(why) = keys::check_signing_key(&pk) {
                errors.push(error("public_key", format!("the key {why}")));
            }
        }
        Kind::FacilityRegister if text(body, "province")? == NATIONAL => {
            errors.push(error(
                "province",
                format!(
                    "{NATIONAL:?} is reserved for the national region report (PROTOCOL §9); give \
                     the province the facility stands in"
                ),
            ));
        }
        Kind::OccupancyReport => {
            if exceeds(body, "gpu_hours_voucher", "gpu_hours_sold")? {
                errors.push(error("gpu_hours_voucher", "must be <= gpu_hours_sold"));
            }
            if exceeds(body, "gpu_hours_sold", "gpu_hours_available")? {
                errors.push(error("gpu_hours_sold", "must be <= gpu_hours_available"));
            }
        }
        Kind::PowerReport if exceeds(body, "it_kwh", "consumed_kwh")? => {
            errors.push(error("it_kwh", "must be <= consumed_kwh"));
        }
        Kind::PermitIssue if text(body, "valid_from")? > text(body, "valid_until")? => {
            errors.push(error("valid_until", "must not be before valid_from"));
        }
        _ => {}
    }
    Ok(())
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
            // A field the schema requires is an error when missing, never a zero.
            (
                Kind::OccupancyReport,
                json!({"period": "2025-03"}),
                vec!["/entry/body/gpu_hours_voucher"],
            ),
            (
                Kind::PowerReport,
                json!({"period": "2025-03", "it_kwh": 1}),
                vec!["/entry/body/consumed_kwh"],
            ),
            (Kind::KeyGrant, json!({}), vec!["/entry/body/public_key"]),
            (
                Kind::KeyGrant,
                json!({"public_key": "not hex"}),
                vec!["/entry/body/public_key"],
            ),
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
            // Dates and months lie in 1970-01-01..9999-12-31 (PROTOCOL §2).
            (Kind::Procurement, json!({"date": "1970-01-01"}), vec![]),
            (
                Kind::Procurement,
                json!({"date": "0000-01-01"}),
                vec!["/entry/body/date"],
            ),
            (
                Kind::PermitIssue,
                json!({"valid_from": "1969-12-31", "valid_until": "9999-12-31"}),
                vec!["/entry/body/valid_from"],
            ),
            (
                Kind::SubsidyGrant,
                json!({"date": "2024-01-01", "condition": {"by": "0000-02-29"}}),
                vec!["/entry/body/condition/by"],
            ),
            (
                Kind::PowerReport,
                json!({"period": "0000-01", "it_kwh": 0, "consumed_kwh": 0}),
                vec!["/entry/body/period"],
            ),
            (Kind::MeterReading, json!({"period": "1970-01"}), vec![]),
            // key.grant: only keys that could sign (PROTOCOL §6).
            (
                Kind::KeyGrant,
                json!({"public_key": hex::encode(
                    ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key().as_bytes()
                )}),
                vec![],
            ),
            (
                Kind::KeyGrant,
                json!({"public_key": format!("01{}", "00".repeat(31))}),
                vec!["/entry/body/public_key"],
            ),
            (
                Kind::KeyGrant,
                json!({"public_key": format!("02{}", "00".repeat(31))}),
                vec!["/entry/body/public_key"],
            ),
            (
                Kind::KeyGrant,
                json!({"public_key": format!("f0{}7f", "ff".repeat(30))}),
                vec!["/entry/body/public_key"],
            ),
            // The national region is no province (PROTOCOL §9).
            (
                Kind::FacilityRegister,
                json!({"province": "national"}),
                vec!["/entry/body/province"],
            ),
            (Kind::FacilityRegister, json!({"province": "Henan"}), vec![]),
            (Kind::OrgRegister, json!({"province": "national"}), vec![]),
        ];
        for (kind, body, want) in cases {
            assert_eq!(check(kind, body.clone()), want, "{kind} {body}");
        }
    }

    #[test]
    fn messages_say_what_to_change() {
        let ts = dates::parse_instant("2025-03-05T00:00:00Z").unwrap();
        let message = |kind, body: Value| {
            let Value::Object(body) = body else {
                unreachable!()
            };
            field_errors(kind, &body, ts).remove(0).message
        };
        let m = message(Kind::Deployment, json!({"date": "0000-01-01"}));
        assert!(
            m.contains("\"0000-01-01\"") && m.contains("1970-01-01"),
            "{m}"
        );
        let m = message(
            Kind::KeyGrant,
            json!({"public_key": format!("01{}", "00".repeat(31))}),
        );
        assert!(m.contains("small order"), "{m}");
        let m = message(Kind::FacilityRegister, json!({"province": "national"}));
        assert!(m.contains("reserved") && m.contains("province"), "{m}");
    }

    /// Every field the schemas spell as a date or a month (at any depth) is range-checked
    /// here: a field added to a schema cannot slip past the 1970 rule.
    #[test]
    fn every_date_and_month_field_of_the_schemas_is_range_checked() {
        const DATE: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
        const MONTH: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";
        fn walk(
            schema: &Value,
            at: &mut Vec<String>,
            found: &mut Vec<(Vec<String>, &'static str)>,
        ) {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (name, prop) in props {
                at.push(name.clone());
                match prop.get("pattern").and_then(Value::as_str) {
                    Some(DATE) => found.push((at.clone(), "1969-12-31")),
                    Some(MONTH) => found.push((at.clone(), "1969-12")),
                    _ => walk(prop, at, found),
                }
                at.pop();
            }
        }
        let mut checked = Vec::new();
        for (name, text) in crate::schema::BODY_SCHEMAS {
            let kind = Kind::parse(name).unwrap();
            let schema: Value = serde_json::from_str(text).unwrap();
            let mut found = Vec::new();
            walk(&schema, &mut Vec::new(), &mut found);
            for (path, early) in found {
                let mut body = json!({});
                let mut slot = &mut body;
                for step in &path {
                    slot = &mut slot[step.as_str()];
                }
                *slot = json!(early);
                let want = format!("/entry/body/{}", path.join("/"));
                assert!(check(kind, body).contains(&want), "{kind}: {want}");
                checked.push(want);
            }
        }
        assert_eq!(checked.len(), 17, "{checked:?}");
    }
}
