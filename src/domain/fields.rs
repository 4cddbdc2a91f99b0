//! Field rules of PROTOCOL §2, §6, §7 and §9 that a JSON Schema cannot say: real calendar
//! dates and months in 1970–9999, ordered pairs of fields, report periods that have begun
//! by the time they are signed, `key.grant` keys that can sign, and the reserved province.
//! Violations are 400s naming the field.

use crate::dates::{self, Month, UnixSeconds};
use crate::domain::bodies::Body;
use crate::keys;
use crate::reject::FieldError;

/// The region of the national report (PROTOCOL §9). No facility is registered in a province
/// of that name, so a province's report can never be mistaken for it.
pub const NATIONAL: &str = "national";

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        path: format!("/entry/body/{field}"),
        message: message.into(),
    }
}

/// A `YYYY-MM-DD` field (its type checked the shape) must be a real calendar day in
/// 1970..9999.
fn date(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if let Err(e) = dates::date(value) {
        errors.push(error(field, e.to_string()));
    }
}

/// A report's period must be a month in 1970..9999 that had begun when the entry was
/// signed at `ts`.
fn period(errors: &mut Vec<FieldError>, value: &str, ts: UnixSeconds) {
    let checked = Month::of_instant(ts)
        .map_err(|e| format!("the entry's ts: {e}"))
        .and_then(|signed| Ok((signed, Month::checked(value).map_err(|e| e.to_string())?)));
    match checked {
        Err(message) => errors.push(error("period", message)),
        Ok((signed, period)) if period > signed => errors.push(error(
            "period",
            format!("period {period} had not begun when the entry was signed ({signed})"),
        )),
        Ok(_) => {}
    }
}

/// Every field-rule violation of a typed body signed at `ts`, in the order of its fields:
/// dates first, then the kind's own rules.
pub fn field_errors(body: &Body, ts: UnixSeconds) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let e = &mut errors;
    match body {
        Body::FacilityRegister(b) => {
            date(e, "announced", &b.announced);
            if b.province == NATIONAL {
                e.push(error(
                    "province",
                    format!(
                        "{NATIONAL:?} is reserved for the national region report (PROTOCOL §9); \
                         give the province the facility stands in"
                    ),
                ));
            }
        }
        Body::FacilityStatus(b) => date(e, "effective", &b.effective),
        Body::PermitRevoke(b) => date(e, "effective", &b.effective),
        Body::FacilityTransfer(b) => date(e, "date", &b.date),
        Body::Procurement(b) => date(e, "date", &b.date),
        Body::Deployment(b) => date(e, "date", &b.date),
        Body::LotTransfer(b) => date(e, "date", &b.date),
        Body::SubsidyDisburse(b) => date(e, "date", &b.date),
        Body::LoanIssue(b) => date(e, "date", &b.date),
        Body::InspectionReport(b) => date(e, "date", &b.date),
        Body::SubsidyGrant(b) => {
            date(e, "date", &b.date);
            if let Some(condition) = &b.condition {
                date(e, "condition/by", &condition.by);
            }
        }
        Body::PermitIssue(b) => {
            date(e, "valid_from", &b.valid_from);
            date(e, "valid_until", &b.valid_until);
            // Both are `YYYY-MM-DD`, so text order is date order.
            if b.valid_from > b.valid_until {
                e.push(error("valid_until", "must not be before valid_from"));
            }
        }
        Body::PowerReport(b) => {
            period(e, &b.period, ts);
            if b.it_kwh > b.consumed_kwh {
                e.push(error("it_kwh", "must be <= consumed_kwh"));
            }
        }
        Body::MeterReading(b) => period(e, &b.period, ts),
        Body::OccupancyReport(b) => {
            period(e, &b.period, ts);
            if b.gpu_hours_voucher > b.gpu_hours_sold {
                e.push(error("gpu_hours_voucher", "must be <= gpu_hours_sold"));
            }
            if b.gpu_hours_sold > b.gpu_hours_available {
                e.push(error("gpu_hours_sold", "must be <= gpu_hours_available"));
            }
        }
        Body::KeyGrant(b) => match keys::parse_public_hex(&b.public_key) {
            None => e.push(error("public_key", "must be 64 lowercase hex digits")),
            Some(pk) => {
                if let Err(why) = keys::check_signing_key(&pk) {
                    e.push(error("public_key", format!("the key {why}")));
                }
            }
        },
        Body::LedgerGenesis(_)
        | Body::OrgRegister(_)
        | Body::KeyRevoke(_)
        | Body::LotSerials(_)
        | Body::FindingResponse(_)
        | Body::FindingResolve(_) => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::entry::Kind;

    /// The example body of `kind` (`schemas/examples/`) with `changes` laid over it, member
    /// by member and nested objects merged, as its type.
    fn body(kind: Kind, changes: Value) -> Body {
        fn merge(into: &mut Value, changes: Value) {
            match (into, changes) {
                (Value::Object(into), Value::Object(changes)) => {
                    for (k, v) in changes {
                        merge(into.entry(k).or_insert(Value::Null), v);
                    }
                }
                (slot, v) => *slot = v,
            }
        }
        let dir = env!("CARGO_MANIFEST_DIR");
        let text = std::fs::read_to_string(format!("{dir}/schemas/examples/{kind}.json")).unwrap();
        let mut example: Value = serde_json::from_str(&text).unwrap();
        merge(&mut example, changes);
        Body::parse(kind, example).unwrap()
    }

    fn check(kind: Kind, changes: Value) -> Vec<String> {
        let ts = dates::parse_instant("2025-03-05T00:00:00Z").unwrap();
        field_errors(&body(kind, changes), ts)
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
        let message = |kind, changes| field_errors(&body(kind, changes), ts).remove(0).message;
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
                let mut changes = json!(early);
                for step in path.iter().rev() {
                    changes = json!({ step.as_str(): changes });
                }
                let want = format!("/entry/body/{}", path.join("/"));
                assert!(check(kind, changes).contains(&want), "{kind}: {want}");
                checked.push(want);
            }
        }
        assert_eq!(checked.len(), 17, "{checked:?}");
    }
}
