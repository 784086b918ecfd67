//! TESTNET ONLY: the admin endpoints of [`crate::testnet_faults`], mounted by
//! [`super::serve_with`] only when asked (`cix node run --testnet-faults`), behind the admin
//! token like every other route.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{Api, ApiError, ApiResult};
use crate::testnet_faults::{self, BlockRequest, DelayRequest, FaultError, MAX_BODY_BYTES};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/testnet/blocked", put(set_blocked))
        .route("/v1/testnet/delays", put(set_delays))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Parses a body ourselves, so that malformed JSON gets the API's `{"error"}` answer.
fn parse<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        tracing::warn!(error = %e, what, "testnet faults: refused a malformed body");
        ApiError(StatusCode::BAD_REQUEST, format!("bad {what} body: {e}"))
    })
}

fn refused(e: FaultError, what: &str) -> ApiError {
    tracing::warn!(error = %e, what, "testnet faults: refused a request");
    let status = match e {
        FaultError::NoDelayingTransport => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError(status, e.to_string())
}

async fn set_blocked(State(api): State<Api>, body: Bytes) -> ApiResult<Value> {
    let req: BlockRequest = parse(&body, "blocked")?;
    let peers =
        testnet_faults::blocked(api.node.peer_id(), &req).map_err(|e| refused(e, "blocked"))?;
    let count = peers.len();
    api.node.testnet_block(peers).await?;
    tracing::debug!(peers = count, "testnet faults: blocked peers set");
    Ok(Json(json!({ "blocked": count })))
}

async fn set_delays(State(api): State<Api>, body: Bytes) -> ApiResult<Value> {
    let req: DelayRequest = parse(&body, "delays")?;
    if !crate::testnet_delay::enabled() {
        return Err(refused(FaultError::NoDelayingTransport, "delays"));
    }
    let links =
        testnet_faults::delays(api.node.peer_id(), &req).map_err(|e| refused(e, "delays"))?;
    crate::testnet_delay::set(api.node.peer_id(), &links);
    let delayed = links.values().filter(|l| !l.delay().is_zero()).count();
    let lossy = links.values().filter(|l| l.loss() > 0.0).count();
    tracing::debug!(
        peers = links.len(),
        delayed,
        lossy,
        "testnet faults: delays set"
    );
    Ok(Json(json!({ "delayed": delayed, "lossy": lossy })))
}
