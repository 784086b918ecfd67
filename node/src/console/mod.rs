//! The operator's web console (issue 11), served on the admin listener under `/console`.
//!
//! People log in with an account (`cix users add`, [`users`]) or with the node's admin token;
//! the session lives here ([`session`]) and in an HttpOnly, SameSite=Strict cookie (`Secure`
//! behind TLS). Every change is a POST that carries the session's CSRF token in
//! `X-CSRF-Token` and an `Origin` naming this console; roles are checked here, on the server.
//! Every change made in the console is written to the audit log (ISO 37156 8.3.4) under the
//! person's name. `specs/console.md` is the reference.
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `GET /console/...` pages | any session | the single-page app; without a session, 303 to `/console/login` |
//! | `GET /console/assets/{file}` | none | the bundle (no data in it) |
//! | `POST /console/api/login` | none | `{"name","password"}` or `{"token"}`: starts a session |
//! | `POST /console/api/logout` | any | ends it |
//! | `GET /console/api/session` | any | `{"user","role","csrf"}` |
//! | `GET /console/api/status`, `peers`, `catalogue`, `search`, `datasets/{id}`, `map`, `requests`, `transfers`, `audit`, `audit/verify`, `revocations` | viewer | read |
//! | `GET /console/api/events` | viewer | server-sent events: `peers`, `requests`, `catalogue`, `revocations`, `transfers` |
//! | `POST /console/api/requests/{id}/approve` | approver | approve a queued request |
//! | `POST /console/api/requests/{id}/deny` | approver | `{"reason"}` |
//! | `POST /console/api/revoke` | admin | `{"cid","reason"}`: revoke a delegation |
//! | `POST /console/api/audit/note` | admin | `{"detail"}`: an operator's note |

mod api;
mod assets;
pub mod limits;
pub mod session;
pub mod users;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::node::Node;
use limits::*;
use session::{Principal, Session, Sessions};
use users::Role;

/// The session cookie's name.
pub const COOKIE: &str = "cix_console";
/// The header every change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the console keeps sessions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login.
    pub max_age: Duration,
    /// Sessions held at most.
    pub max_sessions: usize,
    /// Always mark the cookie `Secure` (the listener is behind TLS); otherwise it is marked so
    /// when the request says it came over HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Answer only requests whose `Host` is a loopback name (`127.0.0.1`, `[::1]`,
    /// `localhost`, any port): the listener is on loopback, and a page from elsewhere whose
    /// name was made to resolve to 127.0.0.1 (DNS rebinding) is refused before anything else.
    pub loopback_host: bool,
}

impl Settings {
    /// The defaults of `specs/console.md`; `remote` (a listener beyond loopback, behind TLS)
    /// makes every cookie `Secure`.
    pub fn for_listener(remote: bool) -> Self {
        Self {
            idle: Duration::from_secs(SESSION_IDLE_SECS),
            max_age: Duration::from_secs(SESSION_MAX_SECS),
            max_sessions: MAX_SESSIONS,
            secure_cookies: remote,
            loopback_host: !remote,
        }
    }
}

/// The console's state.
#[derive(Clone)]
pub(crate) struct Console {
    node: Node,
    token: Arc<str>,
    sessions: Arc<Sessions>,
    settings: Arc<Settings>,
    logins: Arc<tokio::sync::Semaphore>,
    failures: Arc<Mutex<(Instant, u32)>>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// Who made a request, put in its extensions by the session check.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    who: Principal,
    role: Role,
    csrf: String,
    sid: String,
}

impl Actor {
    fn require(&self, role: Role) -> Result<(), Refusal> {
        if self.role >= role {
            Ok(())
        } else {
            tracing::warn!(user = %self.who.label(), have = %self.role, need = %role, "console: role too low");
            Err(Refusal(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {role} role; {} is {}",
                    self.who.label(),
                    self.role
                ),
            ))
        }
    }
    fn label(&self) -> String {
        format!("{} ({})", self.who.label(), self.role)
    }
}

/// An error answer: `{"error"}` with a status.
#[derive(Debug)]
pub(crate) struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Self {
        Refusal(StatusCode::BAD_REQUEST, format!("{e:#}"))
    }
}

/// The console's routes, with their own state, to merge into the admin listener's router.
pub fn routes(node: Node, token: String, settings: Settings) -> Router {
    let console = Console {
        node,
        token: token.into(),
        sessions: Arc::new(Sessions::new(
            settings.idle,
            settings.max_age,
            settings.max_sessions,
        )),
        settings: Arc::new(settings),
        logins: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_LOGINS)),
        failures: Arc::new(Mutex::new((Instant::now(), 0))),
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
    };
    let api = api::routes()
        .route("/console/api/logout", post(logout))
        .route("/console/api/session", get(session_info))
        .layer(middleware::from_fn_with_state(console.clone(), authorise));
    let mut pages = Router::new();
    for page in assets::PAGES {
        pages = pages.route(page, get(page_shell));
    }
    Router::new()
        .merge(api)
        .merge(pages)
        .route("/console/login", get(login_shell))
        .route("/console/api/login", post(login))
        .route("/console/assets/{file}", get(assets::serve))
        .layer(DefaultBodyLimit::max(MAX_CONSOLE_BODY_BYTES))
        .layer(middleware::from_fn_with_state(console.clone(), check_host))
        .with_state(console)
}

/// Whether `host` (a `Host` header: name or address, and maybe a port) names this machine's
/// loopback: `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(addr, _)| addr),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// On a loopback listener every console request must name a loopback host
/// ([`Settings::loopback_host`]): refused with 403 before sessions, logins or pages.
async fn check_host(State(console): State<Console>, req: Request, next: Next) -> Response {
    if console.settings.loopback_host {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_loopback_host(host) {
            tracing::warn!(host = %host.chars().take(80).collect::<String>(),
                "console: a request for another host refused (DNS rebinding?)");
            return Refusal(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {:?} is not this console: it answers on loopback only \
                     (127.0.0.1, [::1] or localhost)",
                    host.chars().take(80).collect::<String>()
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `Origin` of a change must be this console: same host and port as `Host`, over http or
/// https; `Sec-Fetch-Site`, when sent, must be `same-origin`.
fn check_origin(headers: &HeaderMap) -> Result<(), String> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no Origin header")?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no Host header")?;
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("Origin {origin:?} is not an http(s) origin"))?;
    if !rest.eq_ignore_ascii_case(host) {
        return Err(format!("Origin {origin:?} is not this console ({host})"));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" {
            return Err(format!("Sec-Fetch-Site is {site:?}, not same-origin"));
        }
    }
    Ok(())
}

fn secure(console: &Console, headers: &HeaderMap) -> bool {
    console.settings.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let flags = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{flags}"
    ))
    .ok()
}

/// The live session of a request, with an account's role re-read (a removed account's
/// sessions end here).
fn current(console: &Console, headers: &HeaderMap) -> Result<(String, Session), Refusal> {
    let refuse = |why: &str| Refusal(StatusCode::UNAUTHORIZED, why.to_string());
    let sid = cookie_value(headers).ok_or_else(|| refuse("not logged in"))?;
    let mut s = console
        .sessions
        .get(&sid)
        .ok_or_else(|| refuse("the session has ended or never was; log in again"))?;
    s.role = account_role(console, &sid, &s)?;
    Ok((sid, s))
}

/// The role session `s` has now: an account's as stored, as long as it is the account the
/// session logged in as (one removed, or removed and made again under the same name, ends
/// the session here).
fn account_role(console: &Console, sid: &str, s: &Session) -> Result<Role, Refusal> {
    let Principal::Account(name) = &s.who else {
        return Ok(s.role);
    };
    match users::current(&console.node.shared.store, name)? {
        Some((role, key)) if Some(key) == s.account => Ok(role),
        _ => {
            console.sessions.remove(sid);
            tracing::debug!(user = %name, "console session of a removed account ended");
            Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "the account was removed or made anew; log in again".into(),
            ))
        }
    }
}

/// Whether session `sid` may still receive live updates: live, and its account unchanged.
pub(crate) fn still_valid(console: &Console, sid: &str) -> bool {
    console
        .sessions
        .peek(sid)
        .is_some_and(|s| account_role(console, sid, &s).is_ok())
}

async fn authorise(State(console): State<Console>, mut req: Request, next: Next) -> Response {
    let (sid, s) = match current(&console, req.headers()) {
        Ok(found) => found,
        Err(r) => {
            tracing::debug!(path = %req.uri().path(), "console API call without a session");
            return r.into_response();
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Err(why) = check_origin(req.headers()) {
            tracing::warn!(user = %s.who.label(), %why, "console change refused: origin");
            return Refusal(StatusCode::FORBIDDEN, why).into_response();
        }
        let given = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(given, &s.csrf) {
            tracing::warn!(user = %s.who.label(), "console change refused: missing or wrong CSRF token");
            return Refusal(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (X-CSRF-Token)".into(),
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(Actor {
        who: s.who,
        role: s.role,
        csrf: s.csrf,
        sid,
    });
    next.run(req).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// Takes one of this minute's password attempts, counted as a failure until it succeeds
/// ([`give_back`]); `false` when the minute's failures are used up. Taking it before the
/// password is checked means attempts sent all at once count as they start, not as they end.
fn take_attempt(console: &Console) -> bool {
    let mut f = console
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if f.0.elapsed() >= Duration::from_secs(60) {
        *f = (Instant::now(), 0);
    }
    if f.1 >= MAX_LOGIN_FAILURES_PER_MINUTE {
        return false;
    }
    f.1 += 1;
    true
}

/// A password attempt that succeeded does not count against the minute.
fn give_back(console: &Console) {
    let mut f = console
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f.1 = f.1.saturating_sub(1);
}

async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // A login form posted from another site would log the victim in as the attacker.
    if let Err(why) = check_origin(&headers) {
        tracing::warn!(%why, "console login refused: origin");
        return Refusal(StatusCode::FORBIDDEN, why).into_response();
    }
    let Ok(Json(body)) = body else {
        return Refusal(
            StatusCode::BAD_REQUEST,
            "a login is JSON {\"name\",\"password\"} or {\"token\"}".into(),
        )
        .into_response();
    };
    // The admin token (256 random bits, never guessed) is not rate limited, so that a flood of
    // wrong passwords cannot lock the operator out; accounts' passwords are.
    let found = match (body.name, body.password, body.token) {
        (None, None, Some(token)) => {
            let token = token.trim();
            (!token.is_empty() && constant_time_eq(token, &console.token)).then_some((
                Principal::AdminToken,
                Role::Admin,
                None,
            ))
        }
        (Some(name), Some(password), None) => {
            if !take_attempt(&console) {
                tracing::warn!("console login refused: too many failed logins this minute");
                return Refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "more than {MAX_LOGIN_FAILURES_PER_MINUTE} failed logins this minute; \
                         wait, or log in with the admin token"
                    ),
                )
                .into_response();
            }
            let Ok(_permit) = console.logins.acquire().await else {
                return Refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
                    .into_response();
            };
            let store = console.node.shared.store.clone();
            let checked_name = name.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                users::verify(&store, &checked_name, &password)
            })
            .await;
            match verdict {
                Ok(Ok(Some((role, key)))) => {
                    give_back(&console);
                    Some((Principal::Account(name), role, Some(key)))
                }
                Ok(Ok(None)) => None,
                Ok(Err(e)) => return Refusal::from(e).into_response(),
                Err(e) => {
                    tracing::error!(error = %e, "password check task failed");
                    return Refusal(StatusCode::INTERNAL_SERVER_ERROR, "login failed".into())
                        .into_response();
                }
            }
        }
        _ => {
            return Refusal(
                StatusCode::BAD_REQUEST,
                "give either name and password, or token".into(),
            )
            .into_response()
        }
    };
    let Some((who, role, account)) = found else {
        tracing::warn!("console login failed: wrong name, password or token");
        return Refusal(
            StatusCode::UNAUTHORIZED,
            "wrong name, password or token".into(),
        )
        .into_response();
    };
    let label = who.label();
    let (sid, csrf) = console.sessions.create_for(who, role, account);
    crate::audit::log(
        &console.node.shared,
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Other("console".into()))
            .detail(format!("{label} ({role}) logged in to the console")),
    )
    .await;
    let mut resp = Json(json!({ "user": label, "role": role, "csrf": csrf })).into_response();
    if let Some(c) = set_cookie(
        &sid,
        console.settings.max_age.as_secs(),
        secure(&console, &headers),
    ) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

async fn logout(
    State(console): State<Console>,
    headers: HeaderMap,
    axum::Extension(actor): axum::Extension<Actor>,
) -> Response {
    console.sessions.remove(&actor.sid);
    crate::audit::log(
        &console.node.shared,
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Other("console".into()))
            .detail(format!("{} logged out of the console", actor.label())),
    )
    .await;
    let mut resp = Json(json!({ "logged_out": actor.who.label() })).into_response();
    if let Some(c) = set_cookie("", 0, secure(&console, &headers)) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

async fn session_info(axum::Extension(actor): axum::Extension<Actor>) -> Response {
    Json(json!({ "user": actor.who.label(), "role": actor.role, "csrf": actor.csrf }))
        .into_response()
}

async fn page_shell(State(console): State<Console>, headers: HeaderMap) -> Response {
    match current(&console, &headers) {
        Ok(_) => assets::index(),
        Err(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/console/login")],
            "not logged in",
        )
            .into_response(),
    }
}

async fn login_shell() -> Response {
    assets::index()
}

/// Writes a change made in the console to the audit log under the person's name.
async fn audit_change(
    console: &Console,
    actor: &Actor,
    what: &str,
    dataset: Option<cix_protocol::catalogue::DatasetId>,
    peer: Option<cix_protocol::identity::Did>,
) {
    let mut event =
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Other("console".into()))
            .peer_opt(peer)
            .detail(format!("{what}, in the console by {}", actor.label()));
    if let Some(d) = dataset {
        event = event.dataset(d);
    }
    crate::audit::log(&console.node.shared, event).await;
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "127.9.9.9:1",
            "localhost:80",
            "LOCALHOST",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example:80",
            "127.0.0.1.evil.example:80",
            "localhost.evil:80",
            "[::1",
            "10.0.0.1:80",
            "[::2]:80",
            "0.0.0.0:80",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
