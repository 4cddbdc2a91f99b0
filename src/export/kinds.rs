//! Each record kind's table (PROTOCOL §12.4): the entry's `index`, then one typed column
//! per body field, derived from the kind's JSON Schema in `schemas/body/` (the same
//! embedded text ingest enforces), and the cells of one body. A schema construct this
//! mapping does not know is an error naming it, never a column guessed at.

use serde_json::{Map, Value as Json};

use super::table::{Field, Node, Prim, Value};
use crate::dates;
use crate::entry::Kind;

/// The schemas' spelling of a date (`YYYY-MM-DD`), a month (`YYYY-MM`) and an instant
/// (RFC 3339, `Z`, whole seconds): a string field with one of these patterns becomes a
/// DATE, a `YYYY-MM` string and a TIMESTAMP column.
const DATE_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
const MONTH_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";
const INSTANT_PATTERN: &str =
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$";

/// The Julian day of 1970-01-01: DATE columns count days from it.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error("schemas/body/{kind}.schema.json, field {field:?}: {reason}")]
    Schema {
        kind: String,
        field: String,
        reason: String,
    },
    #[error("entry {index} ({kind}), body field {field:?}: {reason}")]
    Body {
        index: u64,
        kind: String,
        field: String,
        reason: String,
    },
}

/// A kind's table: its name (the kind, which names its file) and its columns.
#[derive(Clone, Debug)]
pub struct KindTable {
    pub kind: Kind,
    /// `index`, then the body's fields by name.
    pub fields: Vec<Field>,
}

/// The table of every kind, in `Kind::ALL`'s order.
pub fn tables() -> Result<Vec<KindTable>, KindError> {
    Kind::ALL.iter().map(|k| table(*k)).collect()
}

fn table(kind: Kind) -> Result<KindTable, KindError> {
    let text = crate::schema::BODY_SCHEMAS
        .iter()
        .find(|(name, _)| *name == kind.as_str())
        .map(|(_, text)| *text)
        .ok_or_else(|| schema_error(kind.as_str(), "", "no schema is embedded"))?;
    let schema: Json = serde_json::from_str(text)
        .map_err(|e| schema_error(kind.as_str(), "", &format!("not JSON: {e}")))?;
    let mut fields = vec![Field::required("index", Node::Leaf(Prim::Int64))];
    fields.extend(object_fields(kind.as_str(), "", &schema)?);
    Ok(KindTable { kind, fields })
}

fn schema_error(kind: &str, field: &str, reason: &str) -> KindError {
    KindError::Schema {
        kind: kind.to_string(),
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// The fields of an object schema, sorted by name (an order that does not depend on
/// how the schema's text or the JSON library orders keys); those not `required` are
/// nullable.
fn object_fields(kind: &str, path: &str, schema: &Json) -> Result<Vec<Field>, KindError> {
    let properties = schema
        .get("properties")
        .and_then(Json::as_object)
        .ok_or_else(|| schema_error(kind, path, "an object without properties"))?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let at = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let node = node(kind, &at, &properties[name])?;
            Ok(if required.contains(&name.as_str()) {
                Field::required(name, node)
            } else {
                Field::nullable(name, node)
            })
        })
        .collect()
}

fn node(kind: &str, path: &str, schema: &Json) -> Result<Node, KindError> {
    match schema.get("type").and_then(Json::as_str) {
        Some("integer") => Ok(Node::Leaf(Prim::Int64)),
        Some("boolean") => Ok(Node::Leaf(Prim::Bool)),
        Some("string") => Ok(Node::Leaf(
            match schema.get("pattern").and_then(Json::as_str) {
                Some(DATE_PATTERN) => Prim::Date,
                Some(INSTANT_PATTERN) => Prim::Timestamp,
                // Months stay `YYYY-MM` text: no engine has a month type, and the
                // text orders and compares as months do.
                Some(MONTH_PATTERN) => Prim::Text,
                _ => Prim::Text,
            },
        )),
        Some("array") => {
            let items = schema
                .get("items")
                .ok_or_else(|| schema_error(kind, path, "an array without items"))?;
            Ok(Node::List(Box::new(node(kind, path, items)?)))
        }
        Some("object") => Ok(Node::Struct(object_fields(kind, path, schema)?)),
        other => Err(schema_error(
            kind,
            path,
            &format!("type {other:?} has no column type"),
        )),
    }
}

/// The row of a kind's table for the body of entry `index`.
pub fn row(table: &KindTable, index: u64, body: &Json) -> Result<Vec<Value>, KindError> {
    let fail = |field: &str, reason: String| KindError::Body {
        index,
        kind: table.kind.as_str().to_string(),
        field: field.to_string(),
        reason,
    };
    let object = body
        .as_object()
        .ok_or_else(|| fail("", "the body is not an object".into()))?;
    let index = i64::try_from(index).map_err(|_| fail("index", "beyond INT64".into()))?;
    let mut cells = vec![Value::Int(index)];
    cells.extend(struct_cells(&table.fields[1..], object).map_err(|(f, r)| fail(&f, r))?);
    Ok(cells)
}

/// An error's field and reason, before the entry is named.
type CellError = (String, String);

fn struct_cells(fields: &[Field], object: &Map<String, Json>) -> Result<Vec<Value>, CellError> {
    // Ingest refuses unknown fields, so a field the schema lacks is damage, not data
    // to drop.
    if let Some(unknown) = object
        .keys()
        .find(|k| !fields.iter().any(|f| &f.name == *k))
    {
        return Err((unknown.clone(), "not a field of the kind's schema".into()));
    }
    fields
        .iter()
        .map(|f| match object.get(&f.name) {
            None if f.nullable => Ok(Value::Null),
            None => Err((f.name.clone(), "required but absent".into())),
            Some(v) => cell(&f.node, v).map_err(|(inner, reason)| {
                let at = if inner.is_empty() {
                    f.name.clone()
                } else {
                    format!("{}.{inner}", f.name)
                };
                (at, reason)
            }),
        })
        .collect()
}

fn cell(node: &Node, v: &Json) -> Result<Value, CellError> {
    let wrong = |what: &str| (String::new(), format!("{v} is not {what}"));
    match node {
        Node::Leaf(Prim::Int64) => v
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| wrong("an integer")),
        Node::Leaf(Prim::Bool) => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| wrong("a boolean")),
        Node::Leaf(Prim::Text) => v
            .as_str()
            .map(|s| Value::Text(s.to_string()))
            .ok_or_else(|| wrong("a string")),
        Node::Leaf(Prim::Date) => v
            .as_str()
            .and_then(date_days)
            .map(Value::Date)
            .ok_or_else(|| wrong("a date")),
        Node::Leaf(Prim::Timestamp) => v
            .as_str()
            .and_then(instant_millis)
            .map(Value::Timestamp)
            .ok_or_else(|| wrong("an instant")),
        Node::Leaf(Prim::Decimal) => Err(wrong("a column a schema makes")),
        Node::List(element) => v
            .as_array()
            .ok_or_else(|| wrong("an array"))?
            .iter()
            .map(|item| cell(element, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        Node::Struct(fields) => {
            struct_cells(fields, v.as_object().ok_or_else(|| wrong("an object"))?)
                .map(Value::Struct)
        }
    }
}

/// A protocol date (PROTOCOL §2) as days since 1970-01-01.
pub fn date_days(s: &str) -> Option<i32> {
    dates::parse_date(s).map(|d| d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
}

/// A protocol instant (PROTOCOL §2) as milliseconds since 1970-01-01T00:00:00Z.
pub fn instant_millis(s: &str) -> Option<i64> {
    dates::parse_instant(s)?.checked_mul(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::table::message;

    fn kind_message(kind: Kind) -> String {
        message(&table(kind).unwrap().fields)
    }

    /// The golden schemas of a few kinds: dates as DATE, months as text, lists,
    /// optional structs, and nullable optional fields.
    #[test]
    fn kinds_map_to_these_parquet_schemas() {
        assert_eq!(
            kind_message(Kind::Procurement),
            "message schema {
  required int64 index;
  required binary currency (STRING);
  required int32 date (DATE);
  required binary facility_id (STRING);
  required binary gpu_model (STRING);
  optional binary invoice_b3 (STRING);
  required binary lot_id (STRING);
  required int64 quantity;
  required binary supplier (STRING);
  required int64 unit_price_minor;
}
"
        );
        assert_eq!(
            kind_message(Kind::SubsidyGrant),
            "message schema {
  required int64 index;
  required int64 amount_minor;
  optional group condition {
    required int32 by (DATE);
    required int64 min_utilization_pct;
  }
  required binary currency (STRING);
  required int32 date (DATE);
  required binary facility_id (STRING);
  required binary program (STRING);
  required binary purpose (STRING);
  required binary recipient_org (STRING);
  required binary subsidy_id (STRING);
}
"
        );
        assert_eq!(
            kind_message(Kind::LoanIssue),
            "message schema {
  required int64 index;
  required int64 amount_minor;
  required binary borrower_org (STRING);
  required group collateral (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  required binary currency (STRING);
  required int32 date (DATE);
  required binary facility_id (STRING);
  required binary loan_id (STRING);
  required boolean state_backed;
}
"
        );
        assert_eq!(
            kind_message(Kind::PowerReport),
            "message schema {
  required int64 index;
  required int64 consumed_kwh;
  required binary currency (STRING);
  required binary facility_id (STRING);
  required int64 green_kwh;
  required int64 it_kwh;
  required binary period (STRING);
  required int64 resale_revenue_minor;
  required int64 resold_kwh;
}
"
        );
    }

    #[test]
    fn every_kind_has_a_table_that_parquet_accepts() {
        let all = tables().unwrap();
        assert_eq!(all.len(), Kind::ALL.len());
        for t in all {
            parquet::schema::parser::parse_message_type(&message(&t.fields))
                .unwrap_or_else(|e| panic!("{}: {e}", t.kind.as_str()));
        }
    }

    #[test]
    fn every_example_body_fills_its_row() {
        for t in tables().unwrap() {
            let path = format!(
                "{}/schemas/examples/{}.json",
                env!("CARGO_MANIFEST_DIR"),
                t.kind.as_str()
            );
            let body: Json =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let cells = row(&t, 3, &body).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(cells.len(), t.fields.len());
        }
    }

    #[test]
    fn a_grant_with_a_condition_fills_a_struct_of_a_date() {
        let t = table(Kind::SubsidyGrant).unwrap();
        let body: Json = serde_json::json!({
            "subsidy_id": "s", "facility_id": "f", "recipient_org": "o", "program": "p",
            "purpose": "equipment", "amount_minor": 5, "currency": "CNY", "date": "1970-01-02",
            "condition": {"min_utilization_pct": 30, "by": "2024-10-04"}
        });
        let cells = row(&t, 9, &body).unwrap();
        assert_eq!(cells[0], Value::Int(9));
        assert_eq!(
            cells[2],
            Value::Struct(vec![Value::Date(20_000), Value::Int(30)])
        );
        assert_eq!(cells[4], Value::Date(1));
    }

    #[test]
    fn bodies_that_ingest_would_refuse_are_errors_naming_the_field() {
        let t = table(Kind::PowerReport).unwrap();
        let mut body = serde_json::json!({
            "facility_id": "f", "period": "2025-01", "consumed_kwh": 1, "it_kwh": 1,
            "green_kwh": 0, "resold_kwh": 0, "resale_revenue_minor": 0, "currency": "CNY"
        });
        assert!(row(&t, 1, &body).is_ok());
        body["extra"] = 1.into();
        let e = row(&t, 1, &body).unwrap_err().to_string();
        assert!(e.contains("\"extra\""), "{e}");
        body.as_object_mut().unwrap().remove("extra");
        body["it_kwh"] = "1".into();
        let e = row(&t, 1, &body).unwrap_err().to_string();
        assert!(e.contains("\"it_kwh\""), "{e}");
    }

    #[test]
    fn instants_are_milliseconds_and_dates_days_since_1970() {
        assert_eq!(instant_millis("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(date_days("1970-01-01"), Some(0));
        assert_eq!(date_days("2024-10-04"), Some(20_000));
        assert_eq!(date_days("2024-02-30"), None);
        let instant = serde_json::json!({"type": "string", "pattern": INSTANT_PATTERN});
        assert_eq!(
            node("k", "at", &instant).unwrap(),
            Node::Leaf(Prim::Timestamp)
        );
    }
}
