//! The HTTP API of SPEC §10 (axum). Only this module knows HTTP: handlers translate
//! requests into calls on the ledger's `Reader`, its group-commit `CommitHandle` and the
//! audit, and `error::ApiError` turns every failure into problem JSON in one place.
//!
//! One writer, many readers: submissions go to the writer thread, which batches whatever
//! is waiting into one sync (group commit) and answers after it; reads use the published
//! view and never wait for a sync.

mod error;
mod handlers;
mod metrics;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use tower::ServiceBuilder;

pub use error::ApiError;
pub use metrics::Metrics;
pub use pages::{CONTENT_SECURITY_POLICY, PAGE_ROUTES};

use crate::audit::Snapshot;
use crate::config::Config;
use crate::ledger::{CommitHandle, Committer, Ledger, LedgerError, Reader};

/// SPEC §10: request bodies over this are refused (413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A request that takes longer is answered 408.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Requests served at once; more are answered 503 at once rather than queued forever.
pub const MAX_CONCURRENT_REQUESTS: usize = 512;

/// Every route, as written in the router and in `schemas/openapi.yaml`.
pub const ROUTES: &[&str] = &[
    "/v1/entries",
    "/v1/entries/{index}",
    "/v1/checkpoint",
    "/v1/proofs/inclusion/{index}",
    "/v1/proofs/consistency",
    "/v1/signers/{public_key}",
    "/v1/facilities",
    "/v1/facilities/{id}",
    "/v1/findings",
    "/v1/findings/{id}",
    "/v1/reports/regions",
    "/v1/reports/regions/{province}",
    "/v1/reports/valuation",
    "/v1/reports/valuation/{facility_id}",
    "/v1/openapi.yaml",
    "/healthz",
    "/metrics",
];

pub const OPENAPI_YAML: &str = include_str!("../../schemas/openapi.yaml");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub reader: Reader,
    pub commit: CommitHandle,
    pub metrics: Arc<Metrics>,
    /// The configuration: audit thresholds and valuation assumptions.
    pub config: Arc<Config>,
    /// The audit's view of the projections, refreshed (touched facilities only) before
    /// each findings request so findings reflect every acknowledged entry.
    pub snapshot: Arc<Mutex<Option<Snapshot>>>,
}

/// The API's router, with its layers: body limit, timeout, concurrency limit, metrics.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            ROUTES[0],
            get(handlers::list_entries).post(handlers::submit),
        )
        .route(ROUTES[1], get(handlers::get_entry))
        .route(ROUTES[2], get(handlers::checkpoint))
        .route(ROUTES[3], get(handlers::inclusion))
        .route(ROUTES[4], get(handlers::consistency))
        .route(ROUTES[5], get(handlers::signer))
        .route(ROUTES[6], get(handlers::facilities))
        .route(ROUTES[7], get(handlers::facility))
        .route(ROUTES[8], get(handlers::findings))
        .route(ROUTES[9], get(handlers::finding))
        .route(ROUTES[10], get(handlers::regions))
        .route(ROUTES[11], get(handlers::region))
        .route(ROUTES[12], get(handlers::valuation_screen))
        .route(ROUTES[13], get(handlers::valuation))
        .route(ROUTES[14], get(handlers::openapi))
        .route(ROUTES[15], get(handlers::healthz))
        .route(ROUTES[16], get(handlers::metrics))
        .merge(pages::routes())
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::no_route);
    api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        handlers::track,
    ))
    .layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(handlers::overloaded))
            .load_shed()
            .concurrency_limit(MAX_CONCURRENT_REQUESTS)
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)),
    )
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .layer(tower_http::trace::TraceLayer::new_for_http())
    .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// What `dcledger serve` needs.
pub struct ServeConfig {
    pub data: PathBuf,
    pub listen: String,
    pub config: Config,
    /// The key that signs the ledger's checkpoints (SPEC §11: kept outside the data
    /// directory; `ledger::find_log_key`).
    pub log_key: ed25519_dalek::SigningKey,
}

/// Called once the socket is bound: the address (useful with port 0) and the ledger.
pub type OnListening<'a> = Box<dyn FnOnce(SocketAddr, &Reader) + Send + 'a>;

/// Opens the ledger, serves until SIGTERM or Ctrl-C, then stops accepting, lets the
/// batch in flight finish and sync, and returns.
pub fn serve(config: ServeConfig, on_listening: OnListening<'_>) -> Result<(), ServeError> {
    let ledger = Ledger::open(&config.data, config.log_key.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let committer = Committer::start(ledger);
    let state = AppState {
        reader: committer.reader(),
        commit: committer.handle(),
        metrics: Arc::new(Metrics::default()),
        config: Arc::new(config.config),
        snapshot: Arc::new(Mutex::new(None)),
    };
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen.clone(),
                source,
            })?;
        on_listening(listener.local_addr()?, &state.reader);
        let app = router(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(ServeError::Io)
    });
    // Every request has finished and dropped its handle: the writer drains and exits.
    runtime.shutdown_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS));
    let stopped = committer.shutdown();
    served?;
    Ok(stopped?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// 503 or 408 for the overload and timeout layers, as problem JSON.
fn status_for(err: &tower::BoxError) -> (StatusCode, &'static str) {
    if err.is::<tower::timeout::error::Elapsed>() {
        (StatusCode::REQUEST_TIMEOUT, "timeout")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    }
}
