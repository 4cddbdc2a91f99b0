//! The human pages' routes (PROTOCOL §10): each reads the same snapshot and reports as the
//! JSON API and hands them to `pages` to render. HTML answers carry a
//! Content-Security-Policy that allows no script at all, and errors come as pages.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::handlers::{findings_of, path_param, selected, selection, with_reports, with_snapshot};
use super::{ApiError, AppState};
use crate::pages::{self, ProblemPage};
use crate::report::Reports;
use crate::report::facility;
use crate::report::valuation::ScreenFilter;

/// The pages' routes, beside the API's.
pub const PAGE_ROUTES: &[&str] = &[
    "/",
    "/regions",
    "/regions/{province}",
    "/facilities/{id}",
    "/findings",
    "/valuation",
    "/static/dcledger.css",
    "/static/favicon.svg",
];

/// No script, no plugins, no framing; styles and images only from this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLESHEET: &str = include_str!("../../static/dcledger.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE_ROUTES[0], get(index))
        .route(PAGE_ROUTES[1], get(regions))
        .route(PAGE_ROUTES[2], get(region))
        .route(PAGE_ROUTES[3], get(facility_page))
        .route(PAGE_ROUTES[4], get(findings))
        .route(PAGE_ROUTES[5], get(valuation))
        .route(PAGE_ROUTES[6], get(stylesheet))
        .route(PAGE_ROUTES[7], get(favicon))
}

/// An HTML answer with the page headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn render(page: impl Template) -> Result<Response, ApiError> {
    let body = page.render().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("the page could not be rendered: {e}"),
        )
    })?;
    Ok(html(StatusCode::OK, body))
}

/// A failure as a page, with the status the API would give.
fn problem(e: ApiError) -> Response {
    let page = ProblemPage {
        heading: e.title.to_string(),
        detail: e.detail,
    };
    match page.render() {
        Ok(body) => html(e.status, body),
        Err(render) => (e.status, format!("{}: {render}", e.title)).into_response(),
    }
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(problem)
}

/// A form's empty fields mean "any": they are dropped before the query is read.
fn filled(q: HashMap<String, String>) -> HashMap<String, String> {
    q.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

async fn index(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(
        with_reports(&state, filled(q), |reports, _, _| {
            render(pages::index(reports))
        })
        .await,
    )
}

async fn regions(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(
        with_reports(&state, filled(q), |reports, _, _| {
            render(pages::regions(reports))
        })
        .await,
    )
}

async fn region(
    State(state): State<AppState>,
    province: Result<Path<String>, PathRejection>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let province = match path_param(province) {
        Ok(p) => p,
        Err(e) => return problem(e),
    };
    answer(
        with_reports(&state, filled(q), move |reports, _, _| {
            let page = pages::region(reports, &province).ok_or_else(|| {
                ApiError::not_found(format!(
                    "no facility in a report as of {} is in {province:?}",
                    reports.basis.as_of
                ))
            })?;
            render(page)
        })
        .await,
    )
}

async fn facility_page(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = match path_param(id) {
        Ok(id) => id,
        Err(e) => return problem(e),
    };
    answer(
        with_reports(&state, filled(q), move |reports: &Reports<'_>, _, state| {
            let facts =
                reports.snapshot.facilities.get(&id).ok_or_else(|| {
                    ApiError::not_found(format!("no facility {id:?} is registered"))
                })?;
            let as_of = reports.as_of();
            let findings = findings_of(reports.snapshot, state, as_of, |f| f.facility_id == id)?;
            let report = facility::report(facts, as_of, reports.basis.clone(), findings);
            let valuation = reports
                .valuation(&id)
                .ok_or_else(|| ApiError::not_found(format!("no facility {id:?} is registered")))?;
            render(pages::facility(&report, &valuation.valuation))
        })
        .await,
    )
}

async fn findings(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let q = filled(q);
    let selection = match selection(&q) {
        Ok(selection) => selection,
        Err(e) => return problem(e),
    };
    answer(
        with_snapshot(&state, move |snapshot, state| {
            let (basis, all) = selected(snapshot, state, &q, &selection)?;
            render(pages::findings(&basis, &selection, all))
        })
        .await,
    )
}

async fn valuation(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let filter = ScreenFilter {
        province: q.get("province").cloned(),
        distressed: match q.get("distressed").map(String::as_str) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return problem(ApiError::bad_parameter(
                    "distressed",
                    format!("{other:?} is not true or false"),
                ));
            }
        },
    };
    answer(
        with_reports(&state, q, move |reports, q, _| {
            let page = reports
                .screen(
                    &filter,
                    q.get("after").map(String::as_str),
                    pages::MAX_FINDINGS_SHOWN,
                )
                .map_err(|e| ApiError::bad_parameter("after", e.to_string()))?;
            render(pages::valuation(&page, &pairs, "/valuation"))
        })
        .await,
    )
}

/// A file the pages load, with its type.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn stylesheet() -> Response {
    asset(STYLESHEET, "text/css; charset=utf-8")
}

async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}
