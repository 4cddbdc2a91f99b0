//! The witness's HTTP interface (PROTOCOL §12.2, C2SP tlog-witness): `POST
//! /add-checkpoint` and the liveness probe, behind the same connection bounds as the
//! ledger's API (`conn`): a witness faces the open internet too.
//!
//! Answers are plain text, as tlog-witness has them: cosignature lines on 200, the size
//! last cosigned on 409 (`text/x.tlog.size`), a sentence on every other refusal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;

use super::answers::AnswerBudget;
use super::{Bound, ServeError, conn, handlers, shutdown_signal};
use crate::config::ServerConfig;
use crate::limits::MAX_ADD_CHECKPOINT_BYTES;
use crate::log::cosignature::AddCheckpoint;
use crate::witness::{Refusal, Witness};

/// Serves `witness` on `bound` until SIGTERM or Ctrl-C. `on_listening` is told the
/// address once requests are answered.
pub fn serve_witness(
    bound: Bound,
    witness: Witness,
    bounds: &ServerConfig,
    on_listening: Box<dyn FnOnce(SocketAddr) + Send + '_>,
) -> Result<(), ServeError> {
    let Bound { runtime, listener } = bound;
    let addr = listener.local_addr()?;
    let front = Arc::new(conn::Front {
        budget: AnswerBudget::new(bounds.max_buffered_answer_bytes),
        router: ArcSwap::from_pointee(router(Arc::new(witness), bounds)),
        bounds: conn::Bounds::of(bounds),
    });
    let serving = runtime.spawn(conn::serve(
        listener,
        front,
        shutdown_signal(),
        conn::grace(bounds),
    ));
    on_listening(addr);
    let served = runtime.block_on(serving);
    runtime.shutdown_timeout(conn::grace(bounds));
    served.map_err(|e| ServeError::Io(std::io::Error::other(e)))
}

fn router(witness: Arc<Witness>, bounds: &ServerConfig) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handlers::overloaded))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    bounds.max_concurrent_requests,
                ))
                .timeout(Duration::from_millis(bounds.request_timeout_ms)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_BYTES))
        .layer(RequestBodyDeadlineLayer::new(Duration::from_millis(
            bounds.body_timeout_ms,
        )))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(witness)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return text(e.status(), PLAIN, format!("{}\n", e.body_text())),
    };
    let request = match AddCheckpoint::parse(&body) {
        Ok(request) => request,
        Err(e) => return text(StatusCode::BAD_REQUEST, PLAIN, format!("{e}\n")),
    };
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        tracing::error!("the clock is before 1970: no cosignature can be timestamped");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            PLAIN,
            "the witness's clock is wrong\n".into(),
        );
    };
    // The state is synced to disk before the answer: off the async threads.
    let judged =
        tokio::task::spawn_blocking(move || witness.add_checkpoint(&request, now.as_secs())).await;
    match judged {
        Ok(Ok(Ok(cosignature))) => text(StatusCode::OK, PLAIN, cosignature),
        Ok(Ok(Err(Refusal::Conflict { size, .. }))) => text(
            StatusCode::CONFLICT,
            "text/x.tlog.size",
            format!("{size}\n"),
        ),
        Ok(Ok(Err(refusal))) => {
            let status = StatusCode::from_u16(refusal.status())
                .unwrap_or_else(|_| unreachable!("a refusal's status is one of C2SP's"));
            text(status, PLAIN, format!("{refusal}\n"))
        }
        Ok(Err(e)) => {
            tracing::error!("the witness could not answer: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "the witness could not keep its state; nothing was cosigned\n".into(),
            )
        }
        Err(e) => {
            tracing::error!("a witness request failed: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "nothing was cosigned\n".into(),
            )
        }
    }
}
