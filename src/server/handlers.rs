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

use super::metrics::{self, OTHER_ROUTE};
use super::{ApiError, AppState, OPENAPI_YAML, PAGE_ROUTES, ROUTES};
use crate::audit::render::{FindingList, Selection};
use crate::audit::{self, Finding, Rule, Severity, Snapshot};
use crate::dates::Month;
use crate::entry::Kind;
use crate::keys::parse_public_hex;
use crate::ledger::{EntryFilter, Reader};
use crate::limits::{MAX_PAGE_BYTES, MAX_PAGE_ITEMS};
use crate::report::assumptions::{Assumption, Overrides};
use crate::report::facility::{self, FacilitySummary};
use crate::report::valuation::ScreenFilter;
use crate::report::{self, Basis, Reports};
use crate::submission;
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

/// Records latency per route template and method, both from bounded sets.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| {
            ROUTES
                .iter()
                .chain(PAGE_ROUTES)
                .find(|r| **r == p.as_str())
                .copied()
        })
        .unwrap_or(OTHER_ROUTE);
    let method = metrics::Method::of(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(method, route, start.elapsed().as_secs_f64());
    response
}

pub async fn overloaded(err: tower::BoxError) -> ApiError {
    ApiError::from_layer(&err)
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

/// PROTOCOL §10: a submission says it is JSON (`application/json`, parameters allowed).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type(None));
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unsupported_media_type(Some("(not text)")))?;
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(Some(text)))
    }
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Refused before the body is even looked at: a stopped writer takes nothing.
    if let Some(reason) = state.commit.stopped() {
        return Err(ApiError::stopped(reason));
    }
    require_json(&headers)?;
    let body = body.map_err(|e| ApiError::body(&e))?;
    let batch = submission::is_batch(&body);
    let handle = state.commit.clone();
    // Read and prepared on a blocking thread: a megabyte of JSON and its signatures are
    // no work for an async worker.
    let outcome = tokio::task::spawn_blocking(move || handle.submit(&body))
        .await
        .map_err(|e| ApiError::stopped(format!("the submission could not finish: {e}")))?;
    let receipt = outcome.map_err(|e| {
        let (class, problem) = ApiError::submission(e, batch);
        if let Some(class) = class {
            state.metrics.rejected(class);
        }
        problem
    })?;
    // PROTOCOL §3: a batch wholly in the ledger already is a retry, answered 200, not written.
    let retry = receipt.entries.iter().all(|a| a.already_present);
    if !retry {
        state.metrics.accepted(receipt.entries.len());
    }
    let entries = receipt.entries.iter().map(|a| EntryReceipt {
        index: a.index,
        leaf_hash: hex::encode(a.leaf_hash),
    });
    let checkpoint = &receipt.checkpoint;
    let answer = if batch {
        Receipted::Batch {
            entries: entries.collect(),
            checkpoint,
        }
    } else {
        let mut entries = entries;
        match (entries.next(), entries.next()) {
            (Some(entry), None) => Receipted::One { entry, checkpoint },
            _ => unreachable!("a single envelope has one receipt"),
        }
    };
    let status = if retry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, json_answer(&answer)?).into_response())
}

/// Where an accepted entry is (PROTOCOL §10).
#[derive(serde::Serialize)]
struct EntryReceipt {
    index: u64,
    leaf_hash: String,
}

/// `POST /v1/entries`'s answer: a single envelope's receipt, or a batch's, each with the
/// checkpoint that covers them.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Receipted<'a> {
    One {
        #[serde(flatten)]
        entry: EntryReceipt,
        checkpoint: &'a str,
    },
    Batch {
        entries: Vec<EntryReceipt>,
        checkpoint: &'a str,
    },
}

pub async fn get_entry(
    State(reader): State<Reader>,
    index: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let index = index_param(&path_param(index)?)?;
    blocking(move || Ok(Json(views::entry(&reader.entry(index)?)?))).await
}

/// Runs `f`, a read of files or derived state, on a blocking thread: the async workers
/// never wait on a disk.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the read could not finish: {e}")))?
}

pub async fn list_entries(
    State(state): State<AppState>,
    Query(q): Params,
) -> Result<Response, ApiError> {
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
    let limit = page_limit(&q, ENTRIES_PAGE_ITEMS)?;
    let after: Option<u64> = param(&q, "after")?;
    let filter = EntryFilter {
        kind,
        facility: q.get("facility").cloned(),
        signer,
    };
    large_answer(&state, move |state| {
        let (indices, more) = state.reader.find_entries(&filter, after, limit)?;
        let reader = &state.reader;
        // Each entry is written as JSON as soon as it is read, so that a page is in
        // memory as text (about its size) rather than as a tree of values (several times
        // that).
        let entries = indices.iter().map(|i| {
            let entry = views::entry(&reader.entry(*i)?)?;
            let text = serde_json::value::to_raw_value(&entry)
                .map_err(|e| ApiError::internal(format!("entry {i} could not be written: {e}")))?;
            Ok((*i, text))
        });
        let (page, cut) = cut_page(entries, limit, |(_, text)| text)?;
        let next = if more || cut {
            page.last().map(|(i, _)| *i)
        } else {
            None
        };
        let entries: Vec<Box<serde_json::value::RawValue>> =
            page.into_iter().map(|(_, text)| text).collect();
        json_answer(&EntryPage { entries, next })
    })
    .await
}

/// `GET /v1/entries`: a page of entries, each already JSON text.
#[derive(serde::Serialize)]
struct EntryPage {
    entries: Vec<Box<serde_json::value::RawValue>>,
    next: Option<u64>,
}

/// Entries on a page unless `limit` says otherwise.
const ENTRIES_PAGE_ITEMS: usize = 100;

/// A list's `limit`: 1 to `MAX_PAGE_ITEMS`, `default` when absent.
fn page_limit(q: &HashMap<String, String>, default: usize) -> Result<usize, ApiError> {
    let limit = match q.get("limit") {
        None => default,
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad_parameter("limit", format!("{v:?} is not a number of items"))
        })?,
    };
    if !(1..=MAX_PAGE_ITEMS).contains(&limit) {
        return Err(ApiError::bad_parameter(
            "limit",
            format!("must be 1 to {MAX_PAGE_ITEMS}"),
        ));
    }
    Ok(limit)
}

/// Counts bytes written, to size JSON without building it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A page of a list: items while fewer than `limit` and while their JSON (what `json`
/// picks out of each) stays within `MAX_PAGE_BYTES`, the first one always; and whether
/// the bytes cut it short of `limit` with items left. Reads at most one item past the
/// page.
fn cut_page<T, J: serde::Serialize>(
    items: impl IntoIterator<Item = Result<T, ApiError>>,
    limit: usize,
    json: impl Fn(&T) -> &J,
) -> Result<(Vec<T>, bool), ApiError> {
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        if page.len() == limit {
            return Ok((page, true));
        }
        let item = item?;
        let mut size = ByteCount(1);
        serde_json::to_writer(&mut size, json(&item))
            .map_err(|e| ApiError::internal(format!("an item could not be written: {e}")))?;
        if !page.is_empty() && bytes.saturating_add(size.0) > MAX_PAGE_BYTES {
            return Ok((page, true));
        }
        bytes = bytes.saturating_add(size.0);
        page.push(item);
    }
    Ok((page, false))
}

/// Runs `f`, which builds an answer that may be large, on a thread of its own (scheduled
/// behind small requests) once one of the turns for such answers is free, so the async
/// workers stay free for `/healthz` and small requests; refused (503) if, by then, the
/// answer budget has no room for a page.
pub(super) async fn large_answer<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let turn = state
        .large_answers
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::saturated("the server is shutting down"))?;
    if state.answers.available() < MAX_PAGE_BYTES {
        return Err(ApiError::saturated(
            "the server holds as many answers as it may for clients that have not read them; retry shortly",
        ));
    }
    let state = state.clone();
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("dcledger-answer".into())
        .spawn(move || {
            let _turn = turn;
            // In the idle class, with the threads an audit starts from here (they inherit
            // it): the checkpoint, proofs and submissions take a core the moment they
            // wake, and an answer takes what they leave, instead of both taking turns of a
            // scheduler slice (`beside_audits`).
            crate::parallel::run_when_idle("a large answer");
            // A client that went away leaves no one to answer.
            let _ = answer.send(f(&state));
        })
        .map_err(|e| ApiError::saturated(format!("no thread for the answer: {e}")))?;
    answered.await.map_err(|_| {
        ApiError::internal("the answer's thread ended without an answer (a defect; see the log)")
    })?
}

/// `GET /v1/checkpoint`: the latest checkpoint, with the witnesses' cosignatures of it
/// gathered so far (PROTOCOL §12.2).
pub async fn checkpoint(State(reader): State<Reader>) -> Result<Response, ApiError> {
    // Both are in memory: nothing here waits on the disk.
    let mut response = reader
        .with_cosignatures(&reader.checkpoint())
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

pub async fn inclusion(
    State(reader): State<Reader>,
    index: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let index = index_param(&path_param(index)?)?;
    let size: Option<u64> = param(&q, "size")?;
    // Most proofs need only tiles already in memory: answered here, at once, they wait
    // on no other thread (a blocking thread's turn is milliseconds on a busy machine).
    let proof = match reader.inclusion_in_memory(index, size)? {
        Some(proof) => proof,
        None => blocking(move || Ok(reader.inclusion(index, size)?)).await?,
    };
    Ok(Json(views::inclusion(&proof)))
}

pub async fn consistency(
    State(reader): State<Reader>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let from: u64 = param(&q, "from")?.ok_or_else(|| ApiError::bad_request("from is required"))?;
    let to: u64 = param(&q, "to")?.ok_or_else(|| ApiError::bad_request("to is required"))?;
    // As an inclusion proof: from memory at once, or from disk on a blocking thread.
    let proof = match reader.consistency_in_memory(from, to)? {
        Some(proof) => proof,
        None => blocking(move || Ok(reader.consistency(from, to)?)).await?,
    };
    Ok(Json(views::consistency(&proof)))
}

pub async fn signer(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = path_param(key)?;
    let pk = parse_public_hex(&key)
        .ok_or_else(|| ApiError::bad_request("a public key is 64 lowercase hex"))?;
    blocking(move || {
        let view = state
            .reader
            .signer(&pk)?
            .ok_or_else(|| ApiError::not_found(format!("no key {key} is registered")))?;
        Ok(Json(views::signer(&view)))
    })
    .await
}

/// Runs `f` on the audit snapshot, brought up to date first (a large answer).
pub(super) async fn with_snapshot<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Snapshot, &AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    large_answer(state, move |state| {
        let snapshot = state.snapshot.current(&state.reader)?;
        f(&snapshot, state)
    })
    .await
}

pub(super) fn as_of(snapshot: &Snapshot, q: &HashMap<String, String>) -> Result<Month, ApiError> {
    match q.get("as_of") {
        Some(m) => Month::checked(m).map_err(|e| ApiError::bad_parameter("as_of", e.to_string())),
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

/// Where a finding stands in the order of every list of findings: facility, rule (in
/// the order of PROTOCOL §8), key. A finding is the only one of its rule, facility and key,
/// so the order is total, and a cursor made of these three can neither skip nor repeat
/// a finding however the list changes between pages.
type FindingOrder<'a> = (&'a str, Option<Rule>, &'a str);

fn finding_order(f: &Finding) -> FindingOrder<'_> {
    (&f.facility_id, Rule::parse(f.rule), &f.key)
}

/// The cursor after `f`: `facility:rule:key` (facility ids and rule names hold no `:`;
/// the key, last, may).
fn finding_cursor(f: &Finding) -> String {
    format!("{}:{}:{}", f.facility_id, f.rule, f.key)
}

fn parse_finding_cursor(after: &str) -> Result<FindingOrder<'_>, ApiError> {
    let bad = || {
        ApiError::bad_parameter(
            "after",
            format!("{after:?} is not a findings cursor (facility:rule:key, from `next`)"),
        )
    };
    let mut parts = after.splitn(3, ':');
    let (Some(facility), Some(rule), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let rule = Rule::parse(rule).ok_or_else(bad)?;
    Ok((facility, Some(rule), key))
}

/// A page of a list with the cursor of the next one (`null` on the last).
#[derive(serde::Serialize)]
struct Paged<L: serde::Serialize, C: serde::Serialize> {
    #[serde(flatten)]
    list: L,
    next: Option<C>,
}

pub async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let selection = selection(&q)?;
    let format = answer_format(&q, &headers)?;
    let limit = page_limit(&q, MAX_PAGE_ITEMS)?;
    if let Some(after) = q.get("after") {
        parse_finding_cursor(after)?;
    }
    with_snapshot(&state, move |snapshot, state| {
        let (basis, mut findings) = selected(snapshot, state, &q, &selection)?;
        // The audit lists findings in this order already; sorting (stable, linear on
        // sorted input) makes the pages' contract independent of that.
        findings.sort_by(|a, b| finding_order(a).cmp(&finding_order(b)));
        let after = q
            .get("after")
            .map(|a| parse_finding_cursor(a))
            .transpose()?;
        let start = after.map_or(0, |after| {
            findings.partition_point(|f| finding_order(f) <= after)
        });
        let rest = findings[start..].iter().cloned().map(Ok);
        let (page, more) = cut_page(rest, limit, |f| f)?;
        let next = if more {
            page.last().map(|f| finding_cursor(f))
        } else {
            None
        };
        Ok(match format {
            Format::Csv => {
                let link = next.map(|n| next_link(&uri, &q, &basis.as_of, &n));
                csv_answer(report::render::findings_csv(&basis, &page), link)
            }
            Format::Json => json_answer(&Paged {
                list: FindingList::new(&basis, &page),
                next,
            })?,
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
    let text = serde_json::to_string(value)
        .map_err(|e| ApiError::internal(format!("the answer could not be written as JSON: {e}")))?;
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
        .map(|m| Month::checked(m).map_err(|e| ApiError::bad_parameter("as_of", e.to_string())))
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
    let limit = page_limit(&q, SCREEN_PAGE_ROWS)?;
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
                let link = page
                    .next
                    .as_ref()
                    .map(|next| next_link(&uri, q, &page.basis.as_of, next));
                Ok(csv_answer(
                    report::render::screen_csv(&page.basis, &page.rows),
                    link,
                ))
            }
        }
    })
    .await
}

/// The `Link` header of a CSV page: this request with `after` set to `next`. The next
/// page is as of this page's month, whatever the default becomes meanwhile.
fn next_link(
    uri: &axum::http::Uri,
    q: &HashMap<String, String>,
    as_of: &impl ToString,
    next: &str,
) -> String {
    let mut query: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "after" && k.as_str() != "as_of")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    query.push(("as_of".into(), as_of.to_string()));
    query.push(("after".into(), next.to_string()));
    query.sort();
    format!("<{}?{}>; rel=\"next\"", uri.path(), encode_query(&query))
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
        let mut found: Vec<Arc<Finding>> = snapshot
            .finding(as_of, &state.config.audit, &id)
            .into_iter()
            .collect();
        audit::attach_notes(&state.reader, &mut found)?;
        let finding = found
            .pop()
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

/// Registered facilities, a page at a time in id order; `next` is the last id on the
/// page (ids are unique and never change, so pages neither skip nor repeat).
pub async fn facilities(
    State(state): State<AppState>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    only_known(&q, &["after", "limit"], false)?;
    let limit = page_limit(&q, MAX_PAGE_ITEMS)?;
    with_snapshot(&state, move |snapshot, _| {
        let as_of = snapshot.default_as_of();
        let after = q.get("after").map(String::as_str);
        let rest = snapshot
            .facilities
            .iter()
            .filter(|f| after.is_none_or(|after| f.id() > after))
            .map(|f| {
                // A registered facility was accepted, so the snapshot has a month to
                // describe it as of.
                let as_of = as_of.ok_or_else(|| {
                    ApiError::internal(format!(
                        "facility {:?} is registered but the snapshot has no latest month",
                        f.id()
                    ))
                })?;
                Ok(FacilitySummary::of(f, as_of))
            });
        let (page, more) = cut_page(rest, limit, |f| f)?;
        let next = if more {
            page.last().map(|f| f.facility_id)
        } else {
            None
        };
        Ok(Json(json!({"facilities": page, "next": next})))
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

/// Liveness: the process answers.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "tree_size": state.reader.size()}))
}

/// Readiness: 200 while the writer accepts entries, 503 saying why once it stopped.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.commit.stopped() {
        None => Ok(Json(
            json!({"status": "ready", "tree_size": state.reader.size()}),
        )),
        Some(reason) => Err(ApiError::stopped(format!(
            "the writer stopped after a storage failure and takes no entries until the server \
             is restarted: {reason}"
        ))),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state.metrics.render().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("the metrics could not be written: {e}"),
        )
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
