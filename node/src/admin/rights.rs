//! Admin endpoints of issue 10: re-checking grants (ISO 37156 8.2.5) and quality feedback
//! (9.2 e, 9.3).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use super::{Api, ApiResult};

pub(super) fn routes() -> Router<Api> {
    Router::new().route("/v1/grants/recheck", post(grants_recheck))
}

async fn grants_recheck(State(api): State<Api>) -> ApiResult<Vec<crate::recheck::RecheckLine>> {
    Ok(Json(
        crate::recheck::recheck(&api.node, "asked by the operator").await?,
    ))
}
