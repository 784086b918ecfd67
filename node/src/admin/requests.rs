//! Admin endpoints of individuals' requests and complaints (ISO 37156 8.3.5, 8.3.6), for
//! `cix rights ...` and `cix complaints ...`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Api, ApiResult};
use crate::rights::{self, AnswerRequest, AppealRequest, CaseLine, DecideRequest, NewRequest};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/rights", post(rights_new).get(rights_list))
        .route("/v1/rights/{id}", get(rights_show))
        .route("/v1/rights/{id}/answer", post(rights_answer))
        .route("/v1/complaints", post(complaints_new).get(complaints_list))
        .route("/v1/complaints/{id}", get(complaints_show))
        .route("/v1/complaints/{id}/answer", post(complaints_answer))
        .route("/v1/complaints/{id}/appeal", post(complaints_appeal))
        .route("/v1/complaints/{id}/decide", post(complaints_decide))
}

async fn rights_new(State(api): State<Api>, Json(req): Json<NewRequest>) -> ApiResult<CaseLine> {
    Ok(Json(rights::record(&api.node, false, &req).await?))
}

async fn rights_list(State(api): State<Api>) -> ApiResult<Vec<CaseLine>> {
    Ok(Json(rights::list(&api.node.shared, false)?))
}

async fn rights_show(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<CaseLine> {
    Ok(Json(rights::show(&api.node.shared, false, &id)?))
}

async fn rights_answer(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(req): Json<AnswerRequest>,
) -> ApiResult<CaseLine> {
    Ok(Json(rights::answer(&api.node, false, &id, &req).await?))
}

async fn complaints_new(
    State(api): State<Api>,
    Json(req): Json<NewRequest>,
) -> ApiResult<CaseLine> {
    Ok(Json(rights::record(&api.node, true, &req).await?))
}

async fn complaints_list(State(api): State<Api>) -> ApiResult<Vec<CaseLine>> {
    Ok(Json(rights::list(&api.node.shared, true)?))
}

async fn complaints_show(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<CaseLine> {
    Ok(Json(rights::show(&api.node.shared, true, &id)?))
}

async fn complaints_answer(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(req): Json<AnswerRequest>,
) -> ApiResult<CaseLine> {
    Ok(Json(rights::answer(&api.node, true, &id, &req).await?))
}

async fn complaints_appeal(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(req): Json<AppealRequest>,
) -> ApiResult<CaseLine> {
    Ok(Json(rights::appeal(&api.node, &id, &req).await?))
}

async fn complaints_decide(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(req): Json<DecideRequest>,
) -> ApiResult<CaseLine> {
    Ok(Json(rights::decide(&api.node, &id, &req).await?))
}
