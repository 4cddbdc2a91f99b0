//! The HTTP API of PROTOCOL §10 (axum). Only this module knows HTTP: handlers translate
//! requests into calls on the ledger's `Reader`, its group-commit `CommitHandle` and the
//! audit, and `error::ApiError` turns every failure into problem JSON in one place.
//!
//! One writer, many readers: submissions go to the writer thread, which batches whatever
//! is waiting into one sync (group commit) and answers after it; reads use the published
//! view and never wait for a sync.
//!
//! The server faces the open internet (PROTOCOL §10): `conn` owns the accept loop and the
//! bounds below the router (connections, timeouts, request heads, hyper's own refusals),
//! `answers` the memory held for clients that do not read, and `router` the bounds of a
//! request (body size and deadline, handler time, requests at once). The `[server]`
//! config table sets them all.

mod answers;
mod conn;
mod error;
mod handlers;
mod metrics;
mod pages;
mod tiles;
mod witness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;

pub use answers::AnswerBudget;
pub use error::ApiError;
pub use metrics::Metrics;
pub use pages::{CONTENT_SECURITY_POLICY, PAGE_ROUTES};
pub use witness::serve_witness;

use crate::audit::Published;
use crate::config::{Config, ServerConfig};
use crate::ledger::{CommitHandle, Committer, Ledger, LedgerError, Reader, Unlocked};
pub use crate::limits::MAX_BODY_BYTES;
use crate::limits::MAX_CONCURRENT_LARGE_ANSWERS;

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
    "/readyz",
    "/metrics",
    "/checkpoint",
    "/tile/{*path}",
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
    /// The audit's view of the projections, published immutable and replaced by a newer
    /// one (touched facilities only) when a request finds it behind the ledger, so
    /// findings reflect every acknowledged entry and no request waits on another's audit.
    pub snapshot: Arc<Published>,
    /// Turns for building answers that may be large (`MAX_CONCURRENT_LARGE_ANSWERS`).
    pub large_answers: Arc<Semaphore>,
    /// The memory answers may hold until written (`[server] max_buffered_answer_bytes`).
    pub answers: Arc<AnswerBudget>,
}

impl FromRef<AppState> for Reader {
    fn from_ref(state: &AppState) -> Reader {
        state.reader.clone()
    }
}

impl AppState {
    /// `answers` is the budget the connections' front holds answers against.
    pub fn new(
        reader: Reader,
        commit: CommitHandle,
        config: Config,
        answers: Arc<AnswerBudget>,
    ) -> AppState {
        AppState {
            answers,
            metrics: Arc::new(Metrics::new(reader.clone())),
            reader,
            commit,
            config: Arc::new(config),
            snapshot: Arc::new(Published::default()),
            large_answers: Arc::new(Semaphore::new(large_answer_turns())),
        }
    }
}

/// The API's router, with its layers: body limit and deadline, handler timeout,
/// concurrency limit, metrics. The bounds below the router are `conn`'s.
pub fn router(state: AppState) -> Router {
    let bounds = &state.config.server;
    let request_timeout = Duration::from_millis(bounds.request_timeout_ms);
    let body_timeout = Duration::from_millis(bounds.body_timeout_ms);
    let max_concurrent = bounds.max_concurrent_requests;
    let track = axum::middleware::from_fn_with_state(state.clone(), handlers::track);
    let limited = Router::new()
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
        .route(ROUTES[17], get(handlers::metrics))
        .merge(pages::routes())
        .merge(tiles::routes())
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::no_route)
        .layer(track.clone())
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handlers::overloaded))
                .load_shed()
                // Global: `Router::layer` gives each route its own copy of a layer, and
                // a plain `concurrency_limit` would count each route's requests apart.
                .layer(GlobalConcurrencyLimitLayer::new(max_concurrent))
                .timeout(request_timeout),
        );
    // Liveness and readiness answer whatever the load (PROTOCOL §10): outside the limits.
    let probes = Router::new()
        .route(ROUTES[15], get(handlers::healthz))
        .route(ROUTES[16], get(handlers::readyz))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(track);
    limited
        .merge(probes)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A total deadline for the body, however it trickles (tower-http's `TimeoutBody`
        // would restart its clock at every byte); a handler that reads it gets an error
        // that `ApiError::body` answers 408.
        .layer(RequestBodyDeadlineLayer::new(body_timeout))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// What the server answers while it opens the ledger (recovery, catching derived state
/// up: seconds for a large ledger that crashed): the log's reads (entries, the
/// checkpoint, proofs, tiles) from its files (`ledger::Unlocked`, as of the checkpoint
/// file), liveness, and for anything else (readiness included) 503 with `Retry-After`.
/// Without a reader (a ledger with no checkpoint file yet) only liveness answers.
fn opening_router(reader: Option<Reader>, bounds: &ServerConfig) -> Router {
    let opening = || async { ApiError::opening() };
    let alive = || async { Json(json!({"status": "ok", "opening": true})) };
    let probes = Router::new()
        .route(ROUTES[15], get(alive))
        .route(ROUTES[16], get(opening));
    let reads = match reader {
        Some(reader) => Router::new()
            .route(ROUTES[1], get(handlers::get_entry))
            .route(ROUTES[2], get(handlers::checkpoint))
            .route(ROUTES[3], get(handlers::inclusion))
            .route(ROUTES[4], get(handlers::consistency))
            .merge(tiles::routes())
            .with_state(reader),
        None => Router::new(),
    };
    reads
        .merge(probes)
        .fallback(opening)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(bounds.request_timeout_ms),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Large answers built at once: one fewer than the cores, at least one, at most
/// `MAX_CONCURRENT_LARGE_ANSWERS`.
fn large_answer_turns() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, MAX_CONCURRENT_LARGE_ANSWERS)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "cannot listen on {addr}: {source}; stop what uses it, or choose another address \
         with --listen HOST:PORT (port 0 picks a free one)"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// What `dcledger serve` needs besides its socket.
pub struct ServeConfig {
    pub data: PathBuf,
    pub config: Config,
    /// The key that signs the ledger's checkpoints (PROTOCOL §11: kept outside the data
    /// directory; `ledger::find_log_key`).
    pub log_key: ed25519_dalek::SigningKey,
}

/// Called once the socket is bound: the address (useful with port 0) and the ledger.
pub type OnListening<'a> = Box<dyn FnOnce(SocketAddr, &Reader) + Send + 'a>;

/// A bound listening socket and the runtime that will serve it: bound first, so that a
/// command learns that its address is taken before any other work (`demo` builds a
/// whole ledger before it serves).
pub struct Bound {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
}

impl Bound {
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }
}

/// Binds `addr` (`host:port`; port 0 picks a free one).
pub fn bind(addr: &str) -> Result<Bound, ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    Ok(Bound { runtime, listener })
}

/// Answers the log's reads from its files while it opens the ledger, then serves the
/// whole API on `bound` until SIGTERM or Ctrl-C; then stops accepting, lets the batch in
/// flight finish and sync, and returns.
pub fn serve(
    bound: Bound,
    config: ServeConfig,
    on_listening: OnListening<'_>,
) -> Result<(), ServeError> {
    let Bound { runtime, listener } = bound;
    let bounds = config.config.server.clone();
    let grace = conn::grace(&bounds);
    let addr = listener.local_addr()?;
    // Opening a large ledger takes seconds; its files answer the log's reads meanwhile.
    let early = match Unlocked::open(&config.data).and_then(|u| u.reader()) {
        Ok(reader) => Some(reader),
        Err(e) => {
            tracing::info!(error = %e, "the log's reads wait until the ledger is open");
            None
        }
    };
    let front = Arc::new(conn::Front {
        budget: AnswerBudget::new(bounds.max_buffered_answer_bytes),
        router: ArcSwap::from_pointee(opening_router(early, &bounds)),
        bounds: conn::Bounds::of(&bounds),
    });
    let (give_up, given_up) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(conn::serve(
        listener,
        front.clone(),
        async move {
            tokio::select! {
                () = shutdown_signal() => {},
                _ = given_up => {},
            }
        },
        grace,
    ));
    let ledger = match Ledger::open(&config.data, config.log_key.clone()) {
        Ok(ledger) => ledger,
        Err(e) => {
            let _ = give_up.send(());
            let _ = runtime.block_on(serving);
            return Err(e.into());
        }
    };
    let committer = Committer::start(ledger);
    // Asks the witnesses beside the writer; dropped (told to stop) when serving ends.
    let _witnessing = (!config.config.witnesses.is_empty()).then(|| {
        crate::ledger::witnessing::start(
            committer.reader(),
            config.data.clone(),
            config.config.witnesses.clone(),
        )
    });
    let state = AppState::new(
        committer.reader(),
        committer.handle(),
        config.config,
        front.budget.clone(),
    );
    let reader = state.reader.clone();
    warm_tiles(reader.clone());
    front.router.store(Arc::new(router(state)));
    // Said once the whole API answers: scripts wait for it.
    on_listening(addr, &reader);
    let served = runtime.block_on(serving);
    runtime.shutdown_timeout(grace);
    // Every request has finished; with the router goes the last handle to the writer,
    // which then drains and exits.
    drop(front);
    let stopped = committer.shutdown();
    served.map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
    Ok(stopped?)
}

/// Reads the tiles of the newest entries' proofs into memory, on a thread of its own in
/// the idle class, so that a proof of them is answered on the async worker at once
/// (`handlers::inclusion`) instead of waiting its turn on a blocking thread. Only speed
/// depends on it: a tile it cannot read is named in a warning, and a proof that needs it
/// reports the failure itself.
fn warm_tiles(reader: Reader) {
    let started = std::thread::Builder::new()
        .name("dcledger-warm".into())
        .spawn(move || {
            crate::parallel::run_when_idle("reading the newest tiles into memory");
            match reader.warm_tiles(crate::limits::TILE_WARM_BYTES) {
                Ok(tiles) => tracing::debug!(tiles, "the newest proofs' tiles are in memory"),
                Err(e) => tracing::warn!(error = %e, "the newest proofs' tiles stay on disk"),
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "no thread to read the newest tiles into memory");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use ed25519_dalek::SigningKey;
    use tower::ServiceExt;

    /// While the ledger opens, the log's reads answer from its files and the rest is
    /// 503 with `Retry-After`, readiness included; liveness answers.
    #[tokio::test(flavor = "multi_thread")]
    async fn while_opening_the_logs_reads_answer_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (authority, log) = (
            SigningKey::from_bytes(&[7; 32]),
            SigningKey::from_bytes(&[9; 32]),
        );
        let ledger = Ledger::init(&data, "test.example/opening", "t", &authority, &log).unwrap();
        let note = ledger.reader().checkpoint().to_string();
        ledger.close().unwrap();
        let reader = Unlocked::open(&data).unwrap().reader().unwrap();
        let router = opening_router(Some(reader), &ServerConfig::default());
        let ask = |path: &str| {
            let router = router.clone();
            let request = Request::get(path).body(Body::empty()).unwrap();
            async move { router.oneshot(request).await.unwrap() }
        };
        for path in [
            "/v1/checkpoint",
            "/checkpoint",
            "/v1/entries/0",
            "/v1/proofs/inclusion/0",
            "/tile/0/000.p/1",
            "/healthz",
        ] {
            let answer = ask(path).await;
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            if path.ends_with("checkpoint") {
                let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
                    .await
                    .unwrap();
                assert_eq!(body, note.as_bytes(), "{path}");
            }
        }
        for path in ["/readyz", "/v1/facilities", "/v1/findings", "/"] {
            let answer = ask(path).await;
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert!(answer.headers().contains_key("retry-after"), "{path}");
        }
        // A ledger without a checkpoint file yet: only liveness.
        let router = opening_router(None, &ServerConfig::default());
        let request = Request::get("/v1/checkpoint").body(Body::empty()).unwrap();
        let answer = router.oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
