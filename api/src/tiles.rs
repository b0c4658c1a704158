//! The log as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>) at the node's root: the latest
//! checkpoint (`GET /checkpoint`), hash tiles (`GET /tile/<L>/<N>[.p/<W>]`) and entry bundles
//! (`GET /tile/entries/<N>[.p/<W>]`), so that any tlog-tiles client (a mirror, a monitor, a
//! witness) reads the log as static resources. Paths are read with
//! [`vledger_tlog::tiles::TilePath::parse`], which takes each tile's one canonical spelling
//! only; the bytes come from [`vledger_node::node::Node::tile`].

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use vledger_tlog::tiles::TilePath;

use crate::{AppState, Problem};

/// A full tile or bundle never changes: cached for a year, never revalidated.
pub const FULL_TILE_CACHE: &str = "public, max-age=31536000, immutable";
/// A partial tile's bytes do not change either, but the spec lets a log stop serving it once the
/// full tile exists: cached briefly.
pub const PARTIAL_TILE_CACHE: &str = "public, max-age=60";
/// The checkpoint changes with every batch: revalidated at every use.
pub const CHECKPOINT_CACHE: &str = "no-cache";
/// An error of these routes, such as a tile beyond the tree, which exists once the tree has
/// grown: not stored by caches.
pub const ERROR_CACHE: &str = "no-store";

/// The content type of tiles and bundles.
pub const TILE_CONTENT_TYPE: &str = "application/octet-stream";

/// The latest signed checkpoint, a C2SP signed note, as `GET /v1/checkpoint` serves it.
#[utoipa::path(get, path = "/checkpoint", tag = "tiles",
    responses((status = 200, description = "The latest checkpoint note (tlog-tiles' `<prefix>/checkpoint`)",
        body = String, content_type = "text/plain",
        headers(("Cache-Control" = String, description = "`no-cache`: the checkpoint changes with every batch")))))]
pub(crate) async fn get_checkpoint(State(state): State<AppState>) -> Response {
    let note = state.node.checkpoint();
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, CHECKPOINT_CACHE),
        ],
        note.to_string(),
    )
        .into_response()
}

/// Every tile and bundle: the path is read from the request's own (still percent-encoded) path,
/// since an index of more than three digits spans path segments (`x001/x234/067`).
pub(crate) async fn get_tile(State(state): State<AppState>, uri: Uri) -> Response {
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    let tile = match TilePath::parse(path) {
        Ok(tile) => tile,
        Err(e) => {
            return uncached(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-path",
                format!(
                "{e}: tiles are `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, L from 0 \
                     to 63, N in groups of three digits (`x001/x234/067`), W from 1 to 255, each \
                     written one way only"
            ),
            ))
        }
    };
    let node = state.node.clone();
    let read = tokio::task::spawn_blocking(move || node.tile(&tile))
        .await
        .expect("read task");
    match read {
        Ok(Some(bytes)) => {
            let cache = if tile.is_full() {
                FULL_TILE_CACHE
            } else {
                PARTIAL_TILE_CACHE
            };
            (
                [
                    (header::CONTENT_TYPE, TILE_CONTENT_TYPE),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(None) => uncached(Problem::new(
            StatusCode::NOT_FOUND,
            "tile-not-found",
            format!(
                "the tree of the latest checkpoint ({} entries) does not hold all of `{path}`",
                state.node.tree_size()
            ),
        )),
        Err(e) => uncached(Problem::from(e)),
    }
}

/// The schema of a tile's or a bundle's bytes: a string of bytes of another media type
/// (OpenAPI 3.1's `contentMediaType`), not JSON.
pub(crate) struct TileBytes;

impl utoipa::PartialSchema for TileBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .content_media_type(TILE_CONTENT_TYPE)
            .into()
    }
}

impl utoipa::ToSchema for TileBytes {}

/// A problem of these routes, with [`ERROR_CACHE`].
fn uncached(problem: Problem) -> Response {
    let mut response = problem.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(ERROR_CACHE));
    response
}

/// The operations of the tile routes as the OpenAPI document states them. One handler,
/// [`get_tile`], serves them all: an index of 1,000 or more is written over several path
/// segments (`x001/x234/067`), which no path template can hold, so the document's `index` is the
/// one-group form (indexes below 1,000) and the others are served at the same routes.
#[allow(dead_code)]
pub(crate) mod operations {
    use crate::Problem;

    /// A full hash tile: the 256 hashes of tree level 8 L, nodes 256 N to 256 N + 255 (each the
    /// root of a perfect subtree of 256^L entries), 32 bytes each.
    #[utoipa::path(get, path = "/tile/{level}/{index}", tag = "tiles",
        params(
            ("level" = u8, Path, minimum = 0, maximum = 63, description = "L, the tile level: hashes of tree level 8 L"),
            ("index" = String, Path, pattern = r"^[0-9]{3}$", description = "N, the tile's index in its level, in three digits (N of 1,000 and more: groups of three, all but the last prefixed `x`, e.g. `x001/x234/067`)"),
        ),
        responses(
            (status = 200, description = "The tile: 8,192 bytes", content_type = "application/octet-stream", body = inline(super::TileBytes),
                headers(("Cache-Control" = String, description = "`public, max-age=31536000, immutable`"))),
            (status = 400, description = "Not a tile path (`invalid-path`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
            (status = 404, description = "The tree of the latest checkpoint does not hold the whole tile (`tile-not-found`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
        ))]
    pub(crate) async fn hash_tile() {}

    /// A partial hash tile: the first W hashes of the tile, for a tree that holds fewer than
    /// 256 (and for every larger tree: they never change).
    #[utoipa::path(get, path = "/tile/{level}/{index}.p/{width}", tag = "tiles",
        params(
            ("level" = u8, Path, minimum = 0, maximum = 63, description = "L, the tile level: hashes of tree level 8 L"),
            ("index" = String, Path, pattern = r"^[0-9]{3}$", description = "N, the tile's index in its level, in three digits (N of 1,000 and more: groups of three, all but the last prefixed `x`, e.g. `x001/x234/067`)"),
            ("width" = u8, Path, minimum = 1, maximum = 255, description = "W, the number of hashes"),
        ),
        responses(
            (status = 200, description = "The partial tile: 32 W bytes", content_type = "application/octet-stream", body = inline(super::TileBytes),
                headers(("Cache-Control" = String, description = "`public, max-age=60`"))),
            (status = 400, description = "Not a tile path (`invalid-path`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
            (status = 404, description = "The tree of the latest checkpoint does not hold W hashes of this tile (`tile-not-found`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
        ))]
    pub(crate) async fn partial_hash_tile() {}

    /// A full entry bundle: entries 256 N to 256 N + 255, each as its length (big-endian
    /// `u16`) and its canonical bytes, the bytes `/v1/entries` serves in base64.
    #[utoipa::path(get, path = "/tile/entries/{index}", tag = "tiles",
        params(
            ("index" = String, Path, pattern = r"^[0-9]{3}$", description = "N, the bundle's index, in three digits (N of 1,000 and more: groups of three, all but the last prefixed `x`, e.g. `x001/x234/067`)"),
        ),
        responses(
            (status = 200, description = "The bundle of 256 entries", content_type = "application/octet-stream", body = inline(super::TileBytes),
                headers(("Cache-Control" = String, description = "`public, max-age=31536000, immutable`"))),
            (status = 400, description = "Not a tile path (`invalid-path`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
            (status = 404, description = "The tree of the latest checkpoint does not hold the whole bundle (`tile-not-found`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
        ))]
    pub(crate) async fn entry_bundle() {}

    /// A partial entry bundle: its first W entries.
    #[utoipa::path(get, path = "/tile/entries/{index}.p/{width}", tag = "tiles",
        params(
            ("index" = String, Path, pattern = r"^[0-9]{3}$", description = "N, the bundle's index, in three digits (N of 1,000 and more: groups of three, all but the last prefixed `x`, e.g. `x001/x234/067`)"),
            ("width" = u8, Path, minimum = 1, maximum = 255, description = "W, the number of entries"),
        ),
        responses(
            (status = 200, description = "The bundle of W entries", content_type = "application/octet-stream", body = inline(super::TileBytes),
                headers(("Cache-Control" = String, description = "`public, max-age=60`"))),
            (status = 400, description = "Not a tile path (`invalid-path`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
            (status = 404, description = "The tree of the latest checkpoint does not hold W entries of this bundle (`tile-not-found`)", body = Problem, content_type = "application/problem+json",
                headers(("Cache-Control" = String, description = "`no-store`"))),
        ))]
    pub(crate) async fn partial_entry_bundle() {}
}
