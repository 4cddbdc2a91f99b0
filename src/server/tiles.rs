//! The ledger as a tiled log (PROTOCOL §12, C2SP tlog-tiles), at the root of the address:
//! `GET /checkpoint`, `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]`.
//!
//! Everything is read from files (the `checkpoint` file, the tiles, the segments) on
//! blocking threads, never through the writer. A tile never changes once its path
//! exists, so tiles and bundles are sent as immutable; entry bundles are gzipped for
//! clients that accept it (tiles are hashes, which do not compress).

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;

use super::handlers::blocking;
use super::{ApiError, ROUTES};
use crate::ledger::Reader;
use crate::log::layout::{TILE_PREFIX, TileId, TileKind};

/// `Cache-Control` of every tile and bundle: their content never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Marks an answer the compression layer may gzip: an entry bundle.
#[derive(Clone, Copy)]
struct Compressible;

/// The tile routes, gzip on entry bundles only.
pub(super) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Reader: FromRef<S>,
{
    let compression = CompressionLayer::new().gzip(true).compress_when(
        |_: StatusCode, _: Version, _: &HeaderMap, extensions: &axum::http::Extensions| {
            extensions.get::<Compressible>().is_some()
        },
    );
    Router::new()
        .route(ROUTES[18], get(checkpoint))
        .route(ROUTES[19], get(tile))
        .layer(compression)
}

/// `GET /checkpoint`: the note's bytes exactly, as the `checkpoint` file holds them, with
/// the witnesses' cosignatures of it gathered so far (PROTOCOL §12.2).
async fn checkpoint(State(reader): State<Reader>) -> Result<Response, ApiError> {
    let note = blocking(move || Ok(reader.with_cosignatures(&reader.checkpoint_file()?))).await?;
    let mut response = note.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `GET /tile/...`: a hash tile from the tiles, an entry bundle from the segments.
async fn tile(
    State(reader): State<Reader>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let full = format!("{TILE_PREFIX}/{path}");
    let id = TileId::parse(&full).map_err(|e| ApiError::not_found(e.to_string()))?;
    let size = reader.size();
    let bytes = blocking(move || {
        Ok(match id.kind {
            TileKind::Hashes { .. } => reader.hash_tile(id)?,
            TileKind::Entries => reader.entry_bundle(id)?,
        })
    })
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "{full} is beyond the tree, which holds {size} entries"
        ))
    })?;
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if id.kind == TileKind::Entries {
        response.extensions_mut().insert(Compressible);
    }
    Ok(response)
}
