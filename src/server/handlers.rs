//! Request handlers: parse parameters, call the library, shape the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState, OPENAPI_YAML, status_for};
use crate::audit::render::{FindingList, Selection};
use crate::audit::{self, Finding, Rule, Severity, Snapshot};
use crate::dates::Month;
use crate::entry::Kind;
use crate::keys::parse_public_hex;
use crate::ledger::{EntryFilter, SubmitError};
use crate::limits::MAX_BATCH_ENTRIES;
use crate::report::assumptions::{Assumption, Overrides};
use crate::report::facility::{self, FacilitySummary};
use crate::report::valuation::ScreenFilter;
use crate::report::{self, Basis, Reports};
use crate::views;

type Params = Query<HashMap<String, String>>;

fn param<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("query parameter {name}={v:?} is not valid"))
        }),
    }
}

/// A path parameter; a rejected one (e.g. not UTF-8 once decoded) is a 400 problem too.
pub(super) fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn index_param(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("{raw:?} is not an entry index")))
}

/// Records latency per route template and method.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(&method, &route, start.elapsed().as_secs_f64());
    response
}

pub async fn overloaded(err: tower::BoxError) -> ApiError {
    let (status, slug) = status_for(&err);
    ApiError::new(status, slug, "Service unavailable", err.to_string())
}

pub async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-route",
        "No such endpoint",
        format!("{method} {uri} is not an endpoint of this API; see /v1/openapi.yaml"),
    )
}

/// A route that exists, asked with a method it does not serve (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{uri} does not answer {method}; see /v1/openapi.yaml"),
    )
}

pub async fn submit(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Body too large",
                "the request body is over 1 MiB",
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        state.metrics.rejected("malformed");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "Malformed JSON",
            format!("the body is not JSON: {e}"),
        )
    })?;
    let (single, envelopes) = match value {
        Value::Array(items) => (false, items),
        other => (true, vec![other]),
    };
    if envelopes.is_empty() || envelopes.len() > MAX_BATCH_ENTRIES {
        state.metrics.rejected("batch_size");
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH_ENTRIES} envelopes, not {}",
            envelopes.len()
        )));
    }
    let handle = state.commit.clone();
    let outcome = tokio::task::spawn_blocking(move || handle.submit(envelopes))
        .await
        .map_err(|e| ApiError::from(SubmitError::Stopped(e.to_string())))?;
    let receipt = match outcome {
        Ok(r) => r,
        Err(SubmitError::Rejected(b)) => {
            state.metrics.rejected(b.rejection.class.as_str());
            let prefix = if single {
                String::new()
            } else {
                format!("/{}", b.position)
            };
            return Err(ApiError::rejection(b.rejection, &prefix));
        }
        Err(e) => return Err(e.into()),
    };
    // SPEC §3: a batch wholly in the ledger already is a retry, answered 200, not written.
    let retry = receipt.entries.iter().all(|a| a.already_present);
    if !retry {
        state.metrics.accepted(receipt.entries.len());
    }
    let entries: Vec<Value> = receipt
        .entries
        .iter()
        .map(|a| json!({"index": a.index, "leaf_hash": hex::encode(a.leaf_hash)}))
        .collect();
    let body = if single {
        let mut one = entries.into_iter().next().unwrap_or_default();
        one["checkpoint"] = json!(receipt.checkpoint.as_ref());
        one
    } else {
        json!({"entries": entries, "checkpoint": receipt.checkpoint.as_ref()})
    };
    let status = if retry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(body)))
}

pub async fn get_entry(
    State(state): State<AppState>,
    index: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let index = index_param(&path_param(index)?)?;
    Ok(Json(views::entry(&state.reader.entry(index)?)?))
}

pub async fn list_entries(
    State(state): State<AppState>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let kind = match q.get("kind") {
        Some(k) => Some(
            Kind::parse(k).ok_or_else(|| ApiError::bad_request(format!("unknown kind {k:?}")))?,
        ),
        None => None,
    };
    let signer = match q.get("signer") {
        Some(s) => Some(
            parse_public_hex(s)
                .ok_or_else(|| ApiError::bad_request("signer must be 64 lowercase hex"))?,
        ),
        None => None,
    };
    let limit: usize = param(&q, "limit")?.unwrap_or(100);
    if !(1..=MAX_BATCH_ENTRIES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_BATCH_ENTRIES}"
        )));
    }
    let after: Option<u64> = param(&q, "after")?;
    let filter = EntryFilter {
        kind,
        facility: q.get("facility").cloned(),
        signer,
    };
    let (indices, more) = state.reader.find_entries(&filter, after, limit)?;
    let entries = indices
        .iter()
        .map(|i| views::entry(&state.reader.entry(*i)?))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more { indices.last().copied() } else { None };
    Ok(Json(json!({"entries": entries, "next": next})))
}

pub async fn checkpoint(State(state): State<AppState>) -> Response {
    let mut response = state.reader.checkpoint().to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub async fn inclusion(
    State(state): State<AppState>,
    index: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let index = index_param(&path_param(index)?)?;
    let size: Option<u64> = param(&q, "size")?;
    Ok(Json(views::inclusion(
        &state.reader.inclusion(index, size)?,
    )))
}

pub async fn consistency(
    State(state): State<AppState>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let from: u64 = param(&q, "from")?.ok_or_else(|| ApiError::bad_request("from is required"))?;
    let to: u64 = param(&q, "to")?.ok_or_else(|| ApiError::bad_request("to is required"))?;
    Ok(Json(views::consistency(
        &state.reader.consistency(from, to)?,
    )))
}

pub async fn signer(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = path_param(key)?;
    let pk = parse_public_hex(&key)
        .ok_or_else(|| ApiError::bad_request("a public key is 64 lowercase hex"))?;
    let view = state
        .reader
        .signer(&pk)?
        .ok_or_else(|| ApiError::not_found(format!("no key {key} is registered")))?;
    Ok(Json(views::signer(&view)))
}

/// Runs `f` on the audit snapshot, brought up to date first.
pub(super) async fn with_snapshot<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Snapshot, &AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = state.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(s) => s.refresh(&state.reader)?,
            None => *guard = Some(Snapshot::load(&state.reader)?),
        }
        match guard.as_ref() {
            Some(s) => f(s, &state),
            None => Err(ApiError::bad_request("the ledger has nothing to audit yet")),
        }
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))?
}

pub(super) fn as_of(snapshot: &Snapshot, q: &HashMap<String, String>) -> Result<Month, ApiError> {
    match q.get("as_of") {
        Some(m) => Month::parse(m)
            .ok_or_else(|| ApiError::bad_request(format!("as_of {m:?} is not YYYY-MM"))),
        None => snapshot
            .default_as_of()
            .ok_or_else(|| ApiError::bad_request("the ledger has nothing to audit yet")),
    }
}

/// The findings as of `as_of` that `keep` keeps, with their notes. Filtered first:
/// notes are read one finding at a time, and an audit has tens of thousands.
pub(super) fn findings_of(
    snapshot: &Snapshot,
    state: &AppState,
    as_of: Month,
    keep: impl Fn(&Finding) -> bool,
) -> Result<Vec<Arc<Finding>>, ApiError> {
    let mut findings: Vec<Arc<Finding>> = snapshot
        .audit(as_of, &state.config.audit)
        .into_iter()
        .filter(|f| keep(f))
        .collect();
    audit::attach_notes(&state.reader, &mut findings)?;
    Ok(findings)
}

/// The findings a request selects by `rule`, `severity`, `province` and `facility`.
pub(super) fn selection(q: &HashMap<String, String>) -> Result<Selection, ApiError> {
    Ok(Selection {
        rule: q
            .get("rule")
            .map(|r| {
                Rule::parse(r)
                    .ok_or_else(|| ApiError::bad_parameter("rule", format!("unknown rule {r:?}")))
            })
            .transpose()?,
        severity: q
            .get("severity")
            .map(|s| {
                Severity::parse(s).ok_or_else(|| {
                    ApiError::bad_parameter("severity", format!("unknown severity {s:?}"))
                })
            })
            .transpose()?,
        province: q.get("province").cloned(),
        facility: q.get("facility").cloned(),
    })
}

/// The selected findings as of the request's month, with their notes and basis.
pub(super) fn selected(
    snapshot: &Snapshot,
    state: &AppState,
    q: &HashMap<String, String>,
    selection: &Selection,
) -> Result<(Basis, Vec<Arc<Finding>>), ApiError> {
    let as_of = as_of(snapshot, q)?;
    let findings = findings_of(snapshot, state, as_of, |f| {
        selection.keeps(&snapshot.facilities, f)
    })?;
    let basis = Basis::new(
        &state.reader,
        snapshot.size,
        as_of,
        &state.config,
        &Overrides::default(),
    )?;
    Ok((basis, findings))
}

pub async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let selection = selection(&q)?;
    let format = answer_format(&q, &headers)?;
    with_snapshot(&state, move |snapshot, state| {
        let (basis, findings) = selected(snapshot, state, &q, &selection)?;
        Ok(match format {
            Format::Csv => csv_answer(report::render::findings_csv(&basis, &findings), None),
            Format::Json => json_answer(&FindingList::new(&basis, &findings))?,
        })
    })
    .await
}

/// What an answer is written as: `?format=` first, else the `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn answer_format(q: &HashMap<String, String>, headers: &HeaderMap) -> Result<Format, ApiError> {
    match q.get("format").map(String::as_str) {
        Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(ApiError::bad_parameter(
            "format",
            format!("{other:?} is not a format; use json or csv"),
        )),
        None => {
            let wants_csv = headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.split(';').next().is_some_and(|m| m.trim() == "text/csv"));
            Ok(if wants_csv { Format::Csv } else { Format::Json })
        }
    }
}

/// A JSON answer written by serde_json itself, so figures of any size stay integers.
fn json_answer<T: serde::Serialize>(value: &T) -> Result<Response, ApiError> {
    let text = serde_json::to_string(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("the answer could not be written as JSON: {e}"),
        )
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A CSV answer; a paged one names its next page in a `Link` header.
fn csv_answer(text: String, next: Option<String>) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// Refuses a query parameter a report does not take, naming it.
fn only_known(
    q: &HashMap<String, String>,
    known: &[&str],
    assumptions: bool,
) -> Result<(), ApiError> {
    for name in q.keys() {
        let is_assumption =
            assumptions && (Assumption::parse(name).is_some() || name.starts_with("rent."));
        if !known.contains(&name.as_str()) && !is_assumption {
            let mut accepted: Vec<&str> = known.to_vec();
            if assumptions {
                accepted.extend(Assumption::ALL.iter().map(|a| a.name()));
                accepted.push("rent.MODEL");
            }
            return Err(ApiError::bad_parameter(
                name,
                format!(
                    "unknown parameter; this report takes {}",
                    accepted.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The valuation overrides a request gives.
fn overrides(q: &HashMap<String, String>) -> Result<Overrides, ApiError> {
    let mut o = Overrides::default();
    for (name, value) in q {
        if Assumption::parse(name).is_some() || name.starts_with("rent.") {
            o.set_text(name, value)
                .map_err(|e| ApiError::bad_parameter(&e.name, e.message))?;
        }
    }
    Ok(o)
}

fn report_as_of(q: &HashMap<String, String>) -> Result<Option<Month>, ApiError> {
    q.get("as_of")
        .map(|m| {
            Month::parse(m)
                .ok_or_else(|| ApiError::bad_parameter("as_of", format!("{m:?} is not YYYY-MM")))
        })
        .transpose()
}

/// Runs `f` over the reports of the snapshot as of the request's month.
pub(super) async fn with_reports<T: Send + 'static>(
    state: &AppState,
    q: HashMap<String, String>,
    f: impl FnOnce(&Reports<'_>, &HashMap<String, String>, &AppState) -> Result<T, ApiError>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let as_of = report_as_of(&q)?;
    let query = overrides(&q)?;
    with_snapshot(state, move |snapshot, state| {
        let request = report::Request {
            as_of,
            config: &state.config,
            query: &query,
        };
        let reports = Reports::new(&state.reader, snapshot, &request)?;
        f(&reports, &q, state)
    })
    .await
}

pub async fn regions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, ApiError> {
    only_known(&q, &["as_of", "format"], false)?;
    let format = answer_format(&q, &headers)?;
    with_reports(&state, q, move |reports, _, _| {
        let all = reports.regions();
        match format {
            Format::Json => json_answer(&all),
            Format::Csv => Ok(csv_answer(report::render::regions_csv(&all), None)),
        }
    })
    .await
}

pub async fn region(
    State(state): State<AppState>,
    headers: HeaderMap,
    province: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let province = path_param(province)?;
    only_known(&q, &["as_of", "format"], false)?;
    let format = answer_format(&q, &headers)?;
    with_reports(&state, q, move |reports, _, _| {
        let one = reports.region(&province).ok_or_else(|| {
            ApiError::not_found(format!(
                "no facility in a report as of {} is in {province:?}",
                reports.basis.as_of
            ))
        })?;
        match format {
            Format::Json => json_answer(&one),
            Format::Csv => Ok(csv_answer(
                report::render::regions_csv(&report::RegionsReport {
                    basis: one.basis,
                    regions: vec![one.region],
                }),
                None,
            )),
        }
    })
    .await
}

pub async fn valuation(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    only_known(&q, &["as_of", "format"], true)?;
    let format = answer_format(&q, &headers)?;
    with_reports(&state, q, move |reports, _, _| {
        let one = reports
            .valuation(&id)
            .ok_or_else(|| ApiError::not_found(format!("no facility {id:?} is registered")))?;
        match format {
            Format::Json => json_answer(&one),
            Format::Csv => Ok(csv_answer(
                report::render::valuations_csv(&one.basis, std::slice::from_ref(&one.valuation)),
                None,
            )),
        }
    })
    .await
}

/// Rows of the valuation screen on one page unless `limit` says otherwise.
const SCREEN_PAGE_ROWS: usize = 100;

pub async fn valuation_screen(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Params,
) -> Result<Response, ApiError> {
    only_known(
        &q,
        &[
            "as_of",
            "format",
            "province",
            "distressed",
            "after",
            "limit",
        ],
        true,
    )?;
    let format = answer_format(&q, &headers)?;
    let limit: usize = match q.get("limit") {
        None => SCREEN_PAGE_ROWS,
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_parameter("limit", format!("{text:?} is not a number of rows"))
        })?,
    };
    if !(1..=MAX_BATCH_ENTRIES).contains(&limit) {
        return Err(ApiError::bad_parameter(
            "limit",
            format!("must be 1 to {MAX_BATCH_ENTRIES}"),
        ));
    }
    let distressed = match q.get("distressed").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_parameter(
                "distressed",
                format!("{other:?} is not true or false"),
            ));
        }
    };
    let filter = ScreenFilter {
        province: q.get("province").cloned(),
        distressed,
    };
    with_reports(&state, q, move |reports, q, _| {
        let page = reports
            .screen(&filter, q.get("after").map(String::as_str), limit)
            .map_err(|e| match e {
                crate::ledger::LedgerError::BadRequest(m) => ApiError::bad_parameter("after", m),
                other => other.into(),
            })?;
        match format {
            Format::Json => json_answer(&page),
            Format::Csv => {
                let link = page.next.as_ref().map(|next| {
                    // The next page is as of this page's month, whatever the default
                    // becomes meanwhile.
                    let mut query: Vec<(String, String)> = q
                        .iter()
                        .filter(|(k, _)| k.as_str() != "after" && k.as_str() != "as_of")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    query.push(("as_of".into(), page.basis.as_of.clone()));
                    query.push(("after".into(), next.clone()));
                    query.sort();
                    format!("<{}?{}>; rel=\"next\"", uri.path(), encode_query(&query))
                });
                Ok(csv_answer(
                    report::render::screen_csv(&page.basis, &page.rows),
                    link,
                ))
            }
        }
    })
    .await
}

/// `k=v&k=v`, percent-encoded.
fn encode_query(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub async fn finding(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_param(id)?;
    with_snapshot(&state, move |snapshot, state| {
        let as_of = as_of(snapshot, &HashMap::new())?;
        let finding = findings_of(snapshot, state, as_of, |f| f.id == id)?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(format!("no current finding has id {id}")))?;
        let (size, checkpoint) = state.reader.current();
        let evidence = finding
            .evidence
            .iter()
            .filter(|i| **i < size)
            .map(|i| {
                let mut entry = views::entry(&state.reader.entry(*i)?)?;
                let proof = state.reader.inclusion(*i, Some(size))?;
                entry["proof"] = json!({"tree_size": proof.tree_size, "hashes": views::inclusion(&proof)["hashes"]});
                Ok(entry)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Json(json!({"finding": finding, "checkpoint": checkpoint.as_ref(), "evidence": evidence})))
    })
    .await
}

pub async fn facilities(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    with_snapshot(&state, |snapshot, _| {
        let as_of = snapshot.default_as_of().unwrap_or(Month {
            year: 1970,
            month: 1,
        });
        let list: Vec<FacilitySummary<'_>> = snapshot
            .facilities
            .iter()
            .map(|f| FacilitySummary::of(f, as_of))
            .collect();
        Ok(Json(json!({"facilities": list})))
    })
    .await
}

pub async fn facility(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    with_snapshot(&state, move |snapshot, state| {
        let facts = snapshot
            .facilities
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no facility {id:?} is registered")))?;
        let as_of = as_of(snapshot, &q)?;
        let findings = findings_of(snapshot, state, as_of, |f| f.facility_id == id)?;
        let basis = Basis::new(
            &state.reader,
            snapshot.size,
            as_of,
            &state.config,
            &Overrides::default(),
        )?;
        json_answer(&facility::report(facts, as_of, basis, findings))
    })
    .await
}

pub async fn openapi() -> Response {
    let mut response = OPENAPI_YAML.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    response
}

pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "tree_size": state.reader.size()}))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render(state.reader.size()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
