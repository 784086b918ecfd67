//! Admin endpoints for emergency access (ISO 37156 6.7) and registrar trust (5.5.3, 8.2.5).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Api, ApiResult};
use crate::{emergency, registrars};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/emergency/agreements", get(agreements).post(agree))
        .route("/v1/emergency/declarations", get(list).post(declare))
        .route("/v1/emergency/declarations/{id}/end", post(end))
        .route("/v1/emergency/declarations/{id}/review", post(review))
        .route("/v1/registrars", get(registrars_list).post(registrars_set))
        .route("/v1/config/reload", post(config_reload))
}

async fn agreements(State(api): State<Api>) -> ApiResult<Vec<emergency::AgreementLine>> {
    Ok(Json(emergency::agreements(&api.node.shared)?))
}

async fn agree(
    State(api): State<Api>,
    Json(req): Json<emergency::AgreeRequest>,
) -> ApiResult<emergency::AgreementLine> {
    Ok(Json(emergency::agree(&api.node, &req).await?))
}

async fn list(State(api): State<Api>) -> ApiResult<Vec<emergency::DeclarationLine>> {
    Ok(Json(emergency::list(&api.node.shared)?))
}

async fn declare(
    State(api): State<Api>,
    Json(req): Json<emergency::DeclareRequest>,
) -> ApiResult<emergency::DeclarationLine> {
    Ok(Json(emergency::declare(&api.node, &req).await?))
}

async fn end(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<emergency::DeclarationLine> {
    Ok(Json(
        emergency::end(&api.node, &emergency::EndRequest { declaration: id }).await?,
    ))
}

async fn review(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(mut req): Json<emergency::ReviewRequest>,
) -> ApiResult<emergency::ReviewReport> {
    req.declaration = id;
    Ok(Json(emergency::review(&api.node.shared, &req).await?))
}

async fn registrars_list(State(api): State<Api>) -> ApiResult<Vec<String>> {
    Ok(Json(
        registrars::trusted(&api.node.shared)
            .iter()
            .map(ToString::to_string)
            .collect(),
    ))
}

async fn registrars_set(
    State(api): State<Api>,
    Json(req): Json<registrars::TrustRequest>,
) -> ApiResult<registrars::TrustChange> {
    Ok(Json(registrars::set_trust(&api.node, &req).await?))
}

async fn config_reload(State(api): State<Api>) -> ApiResult<registrars::TrustChange> {
    Ok(Json(registrars::reload(&api.node).await?))
}
