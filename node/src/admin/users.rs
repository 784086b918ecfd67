//! Admin endpoints of issue 11: the web console's accounts (`cix users add | list | remove`).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/users` | one [`UserLine`] per account |
//! | `POST /v1/users` | `{"name","role","password"}`: create an account |
//! | `POST /v1/users/{name}/remove` | remove it; its console sessions end |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{Api, ApiError, ApiResult};
use crate::console::users::{self, Role, UserLine};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/users", get(list).post(add))
        .route("/v1/users/{name}/remove", post(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    name: String,
    role: String,
    password: String,
}

async fn add(State(api): State<Api>, Json(body): Json<AddBody>) -> ApiResult<UserLine> {
    let role: Role = body
        .role
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    let store = api.node.shared.store.clone();
    let line =
        tokio::task::spawn_blocking(move || users::add(&store, &body.name, role, &body.password))
            .await
            .map_err(|e| anyhow::anyhow!("hashing task failed: {e}"))??;
    crate::audit::log(
        &api.node.shared,
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Other("console".into()))
            .detail(format!(
                "console user {} added with role {} by the operator",
                line.name, line.role
            )),
    )
    .await;
    Ok(Json(line))
}

async fn list(State(api): State<Api>) -> ApiResult<Vec<UserLine>> {
    Ok(Json(users::list(&api.node.shared.store)?))
}

async fn remove(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<UserLine> {
    let line = users::remove(&api.node.shared.store, &name)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("{e:#}")))?;
    crate::audit::log(
        &api.node.shared,
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Other("console".into()))
            .detail(format!(
                "console user {} removed by the operator",
                line.name
            )),
    )
    .await;
    Ok(Json(line))
}
