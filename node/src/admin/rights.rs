//! Admin endpoints of issue 10: re-checking grants (ISO 37156 8.2.5) and quality feedback
//! (9.2 e, 9.3).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Api, ApiResult};
use crate::quality;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/grants/recheck", post(grants_recheck))
        .route("/v1/quality/report", post(quality_report))
        .route("/v1/quality/reports", get(quality_reports))
        .route("/v1/quality/answer", post(quality_answer))
        .route("/v1/quality/{dataset}", get(quality_show))
}

async fn grants_recheck(State(api): State<Api>) -> ApiResult<Vec<crate::recheck::RecheckLine>> {
    Ok(Json(
        crate::recheck::recheck(&api.node, "asked by the operator").await?,
    ))
}

async fn quality_report(
    State(api): State<Api>,
    Json(req): Json<quality::ReportRequest>,
) -> ApiResult<quality::ReportLine> {
    Ok(Json(quality::report(&api.node, &req).await?))
}

async fn quality_reports(State(api): State<Api>) -> ApiResult<Vec<quality::ReportLine>> {
    Ok(Json(quality::reports(&api.node.shared)?))
}

async fn quality_answer(
    State(api): State<Api>,
    Json(req): Json<quality::AnswerRequest>,
) -> ApiResult<quality::ReportLine> {
    Ok(Json(quality::answer(&api.node, &req).await?))
}

async fn quality_show(
    State(api): State<Api>,
    Path(dataset): Path<String>,
) -> ApiResult<quality::MeasuresLine> {
    Ok(Json(quality::measures(&api.node.shared, &dataset)?))
}
