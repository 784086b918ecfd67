//! The web console's sessions, CSRF protection and roles (issue 11, `specs/console.md`),
//! against a real node's admin listener on 127.0.0.1 port 0. Every change made in the console
//! is in the audit log under the person's name (ISO 37156 8.3.4).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cix_node::access;
use cix_node::console::users::{self, Role};
use cix_node::publish::{publish, PublishRequest};
use common::{eventually, readings_csv, spawn, TestNode};
use serde_json::{json, Value};

/// One HTTP answer.
struct Answer {
    status: u16,
    cookie: Option<String>,
    location: Option<String>,
    body: Value,
}

/// A blocking HTTP call made off the runtime's threads. `headers` are sent as given.
async fn call(
    method: &str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
) -> Answer {
    let method = method.to_string();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut resp = if method == "GET" {
            let mut r = agent.get(&url);
            for (k, v) in &headers {
                r = r.header(*k, v);
            }
            r.call()
        } else {
            let mut r = agent.post(&url);
            for (k, v) in &headers {
                r = r.header(*k, v);
            }
            r.send_json(body.unwrap_or(json!({})))
        }
        .expect("the console answers");
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let cookie = header("set-cookie");
        let location = header("location");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status,
            cookie,
            location,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    })
    .await
    .expect("HTTP task")
}

/// A node with its admin listener (and so the console) bound on loopback.
struct Console {
    t: TestNode,
    base: String,
    token: String,
}

async fn console(name: &str, bootstrap: Vec<String>) -> Console {
    let t = spawn(name, bootstrap).await;
    let token = t.node.shared.home.load_token().expect("token");
    let addr = cix_node::admin::serve(
        t.node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        token.clone(),
    )
    .await
    .expect("serve");
    Console {
        t,
        base: format!("http://{addr}"),
        token,
    }
}

/// A logged-in browser: its cookie and CSRF token.
struct Login {
    cookie: String,
    csrf: String,
}

impl Console {
    fn origin(&self) -> String {
        self.base.clone()
    }

    async fn login(&self, body: Value) -> Answer {
        call(
            "POST",
            format!("{}/console/api/login", self.base),
            vec![("Origin", self.origin())],
            Some(body),
        )
        .await
    }

    async fn log_in(&self, name: &str, password: &str) -> Login {
        let a = self
            .login(json!({ "name": name, "password": password }))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cookie = a.cookie.expect("a session cookie");
        Login {
            cookie: cookie.split(';').next().unwrap().to_string(),
            csrf: a.body["csrf"].as_str().unwrap().to_string(),
        }
    }

    async fn get(&self, path: &str, who: Option<&Login>) -> Answer {
        let headers = who
            .map(|l| vec![("Cookie", l.cookie.clone())])
            .unwrap_or_default();
        call("GET", format!("{}{path}", self.base), headers, None).await
    }

    async fn post(&self, path: &str, who: &Login, body: Value) -> Answer {
        call(
            "POST",
            format!("{}{path}", self.base),
            vec![
                ("Cookie", who.cookie.clone()),
                ("Origin", self.origin()),
                ("X-CSRF-Token", who.csrf.clone()),
            ],
            Some(body),
        )
        .await
    }

    fn add_user(&self, name: &str, role: Role) {
        users::add(
            &self.t.node.shared.store,
            name,
            role,
            &format!("{name} password 123"),
        )
        .expect("add user");
    }
}

const API_READS: &[&str] = &[
    "/console/api/session",
    "/console/api/status",
    "/console/api/peers",
    "/console/api/catalogue",
    "/console/api/search?q=water",
    "/console/api/map",
    "/console/api/requests",
    "/console/api/transfers",
    "/console/api/audit",
    "/console/api/audit/verify",
    "/console/api/revocations",
    "/console/api/events",
    "/console/api/datasets/00",
];
const PAGES: &[&str] = &[
    "/console",
    "/console/status",
    "/console/peers",
    "/console/catalogue",
    "/console/map",
    "/console/datasets/00",
    "/console/requests",
    "/console/transfers",
    "/console/audit",
    "/console/revocations",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_out_every_page_and_api_call_is_refused() {
    common::init_tracing();
    let c = console("Water Board", vec![]).await;
    for path in API_READS {
        let a = c.get(path, None).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    for path in PAGES {
        let a = c.get(path, None).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.location.as_deref(), Some("/console/login"), "{path}");
    }
    // A made-up cookie is no session either.
    let fake = Login {
        cookie: format!("cix_console={}", "ab".repeat(32)),
        csrf: "x".into(),
    };
    assert_eq!(c.get("/console/api/status", Some(&fake)).await.status, 401);
    for path in [
        "/console/api/requests/abc/approve",
        "/console/api/logout",
        "/console/api/revoke",
    ] {
        let a = c.post(path, &fake, json!({})).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    // The login page and the bundle are served (they hold no data).
    assert_eq!(c.get("/console/login", None).await.status, 200);
    assert_eq!(c.get("/console/assets/app.js", None).await.status, 200);
    assert_eq!(c.get("/console/assets/nope.js", None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_account_or_admin_token_logout_and_replay() {
    common::init_tracing();
    let c = console("Water Board", vec![]).await;
    c.add_user("ada", Role::Viewer);
    let wrong = c
        .login(json!({ "name": "ada", "password": "not her password" }))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.cookie.is_none());
    let nobody = c
        .login(json!({ "name": "bob", "password": "bob password 123" }))
        .await;
    assert_eq!(nobody.status, 401);
    let bad_token = c.login(json!({ "token": "0".repeat(64) })).await;
    assert_eq!(bad_token.status, 401);

    let a = c
        .login(json!({ "name": "ada", "password": "ada password 123" }))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let set = a.cookie.clone().expect("cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    assert_eq!(a.body["role"], "viewer");
    let ada = Login {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: a.body["csrf"].as_str().unwrap().to_string(),
    };
    let me = c.get("/console/api/session", Some(&ada)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["user"], "ada");
    assert_eq!(me.body["csrf"], ada.csrf.as_str());
    assert_eq!(c.get("/console/catalogue", Some(&ada)).await.status, 200);
    let status = c.get("/console/api/status", Some(&ada)).await;
    assert_eq!(status.body["name"], "Water Board");

    // Behind a TLS proxy the cookie is Secure.
    let tls = call(
        "POST",
        format!("{}/console/api/login", c.base),
        vec![
            ("Origin", c.origin()),
            ("X-Forwarded-Proto", "https".into()),
        ],
        Some(json!({ "token": c.token })),
    )
    .await;
    assert_eq!(tls.status, 200, "{}", tls.body);
    assert_eq!(tls.body["role"], "admin");
    assert!(tls.cookie.unwrap().contains("; Secure"));

    // Logging out ends the session; the same cookie and CSRF token replayed are refused.
    let out = c.post("/console/api/logout", &ada, json!({})).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(c.get("/console/api/status", Some(&ada)).await.status, 401);
    assert_eq!(
        c.post("/console/api/logout", &ada, json!({})).await.status,
        401
    );
    assert_eq!(c.get("/console/peers", Some(&ada)).await.status, 303);

    // Removing an account ends its sessions at once, and an account made again under the same
    // name (here with more rights) does not bring them back.
    c.add_user("bob", Role::Viewer);
    let bob = c.log_in("bob", "bob password 123").await;
    assert_eq!(c.get("/console/api/status", Some(&bob)).await.status, 200);
    users::remove(&c.t.node.shared.store, "bob").unwrap();
    c.add_user("bob", Role::Admin);
    assert_eq!(c.get("/console/api/status", Some(&bob)).await.status, 401);
    let note = c
        .post("/console/api/audit/note", &bob, json!({ "detail": "x" }))
        .await;
    assert_eq!(note.status, 401, "{}", note.body);
    let bob_again = c.log_in("bob", "bob password 123").await;
    let me = c.get("/console/api/session", Some(&bob_again)).await;
    assert_eq!(me.body["role"], "admin");

    // The logins are in the audit log under the names.
    let log = c.t.node.shared.audit.list(&Default::default()).unwrap();
    let details: Vec<String> = log.iter().filter_map(|r| r.detail.clone()).collect();
    assert!(
        details.iter().any(|d| d.contains("ada (viewer) logged in")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("ada (viewer) logged out")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("(admin token) (admin) logged in")),
        "{details:?}"
    );
}

/// Wrong passwords sent all at once are counted as they start: no more than the minute's
/// allowance is checked, the rest are refused; the admin token still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_capped_and_the_token_still_logs_in() {
    use cix_node::console::limits::MAX_LOGIN_FAILURES_PER_MINUTE;
    common::init_tracing();
    let c = std::sync::Arc::new(console("Water Board", vec![]).await);
    c.add_user("ada", Role::Admin);
    let tries = 2 * MAX_LOGIN_FAILURES_PER_MINUTE as usize;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..tries {
        let c = c.clone();
        set.spawn(async move {
            c.login(json!({ "name": "ada", "password": format!("guess number {i}") }))
                .await
                .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, tries, "{statuses:?}");
    assert_eq!(
        checked, MAX_LOGIN_FAILURES_PER_MINUTE as usize,
        "{statuses:?}"
    );
    // Even the right password waits for the minute...
    let ada = c
        .login(json!({ "name": "ada", "password": "ada password 123" }))
        .await;
    assert_eq!(ada.status, 429);
    // ...but the operator is never locked out.
    let op = c.login(json!({ "token": c.token })).await;
    assert_eq!(op.status, 200, "{}", op.body);
    let empty = c.login(json!({ "token": "" })).await;
    assert_eq!(empty.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_posts_are_rejected() {
    common::init_tracing();
    let c = console("Water Board", vec![]).await;
    c.add_user("ada", Role::Admin);
    let ada = c.log_in("ada", "ada password 123").await;
    let url = format!("{}/console/api/audit/note", c.base);
    let note = json!({ "detail": "forged?" });
    let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        (
            "no CSRF token",
            vec![("Cookie", ada.cookie.clone()), ("Origin", c.origin())],
        ),
        (
            "a wrong CSRF token",
            vec![
                ("Cookie", ada.cookie.clone()),
                ("Origin", c.origin()),
                ("X-CSRF-Token", "0".repeat(64)),
            ],
        ),
        (
            "another site's Origin",
            vec![
                ("Cookie", ada.cookie.clone()),
                ("Origin", "http://evil.example".into()),
                ("X-CSRF-Token", ada.csrf.clone()),
            ],
        ),
        (
            "no Origin",
            vec![
                ("Cookie", ada.cookie.clone()),
                ("X-CSRF-Token", ada.csrf.clone()),
            ],
        ),
        (
            "a cross-site fetch",
            vec![
                ("Cookie", ada.cookie.clone()),
                ("Origin", c.origin()),
                ("X-CSRF-Token", ada.csrf.clone()),
                ("Sec-Fetch-Site", "cross-site".into()),
            ],
        ),
    ];
    for (what, headers) in cases {
        let a = call("POST", url.clone(), headers, Some(note.clone())).await;
        assert_eq!(a.status, 403, "{what}: {}", a.body);
    }
    // Another session's CSRF token does not fit this one.
    let other = c.log_in("ada", "ada password 123").await;
    let mixed = Login {
        cookie: ada.cookie.clone(),
        csrf: other.csrf.clone(),
    };
    assert_eq!(
        c.post("/console/api/audit/note", &mixed, note.clone())
            .await
            .status,
        403
    );
    // A login posted from another site is refused too (login CSRF).
    let a = call(
        "POST",
        format!("{}/console/api/login", c.base),
        vec![("Origin", "http://evil.example".into())],
        Some(json!({ "name": "ada", "password": "ada password 123" })),
    )
    .await;
    assert_eq!(a.status, 403);
    // DNS rebinding: a page from another name that was made to resolve to 127.0.0.1 sends
    // that name as Host, and its own origin (which then matches); with the right token even,
    // it is refused, as are its page loads. Loopback names are answered.
    let port = c.base.rsplit_once(':').unwrap().1.to_string();
    let rebound = format!("evil.example:{port}");
    let a = call(
        "POST",
        format!("{}/console/api/login", c.base),
        vec![
            ("Host", rebound.clone()),
            ("Origin", format!("http://{rebound}")),
        ],
        Some(json!({ "token": c.token })),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.cookie.is_none());
    assert!(
        a.body["error"].as_str().unwrap().contains("loopback only"),
        "{}",
        a.body
    );
    let page = call(
        "GET",
        format!("{}/console/login", c.base),
        vec![("Host", rebound)],
        None,
    )
    .await;
    assert_eq!(page.status, 403);
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let a = call(
            "POST",
            format!("{}/console/api/login", c.base),
            vec![("Host", host.clone()), ("Origin", format!("http://{host}"))],
            Some(json!({ "token": c.token })),
        )
        .await;
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
    // None of them was written; the genuine post is, under ada's name.
    let forged = |c: &Console| {
        c.t.node
            .shared
            .audit
            .list(&Default::default())
            .unwrap()
            .into_iter()
            .filter(|r| r.detail.as_deref().is_some_and(|d| d.contains("forged?")))
            .count()
    };
    assert_eq!(forged(&c), 0);
    let ok = c.post("/console/api/audit/note", &ada, note.clone()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(forged(&c), 1);
    let log = c.t.node.shared.audit.list(&Default::default()).unwrap();
    assert!(log
        .iter()
        .any(|r| r.detail.as_deref() == Some("note: forged?, in the console by ada (admin)")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_refused() {
    common::init_tracing();
    let t = spawn("Water Board", vec![]).await;
    users::add(&t.node.shared.store, "ada", Role::Admin, "ada password 123").unwrap();
    let settings = cix_node::console::Settings {
        idle: Duration::from_millis(400),
        ..cix_node::console::Settings::for_listener(false)
    };
    let app = cix_node::console::routes(t.node.clone(), "t".repeat(64), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = Console {
        t,
        base: format!("http://{addr}"),
        token: String::new(),
    };
    let ada = c.log_in("ada", "ada password 123").await;
    assert_eq!(c.get("/console/api/status", Some(&ada)).await.status, 200);
    // Idle expiry is the clock's business alone: let the idle time pass, unused.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.get("/console/api/status", Some(&ada)).await.status, 401);
    assert_eq!(
        c.post("/console/api/audit/note", &ada, json!({ "detail": "late" }))
            .await
            .status,
        401
    );
}

/// Publishes a shared-named CSV from `owner`.
async fn publish_named(owner: &TestNode) -> cix_node::publish::Published {
    let file = owner.path("named.csv");
    std::fs::write(&file, readings_csv(200)).unwrap();
    publish(
        &owner.node,
        PublishRequest {
            path: file,
            title: Some("Pressure readings".into()),
            spectrum: Some("shared-named".into()),
            meta: Some("domain = \"water\"\nkind = \"supply\"\ndescription = \"test\"\n".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_approves_and_the_approval_is_audited_by_name() {
    common::init_tracing();
    let owner = console("Water Board", vec![]).await;
    let requester = spawn("Environment Office", vec![owner.t.addr().await]).await;
    let ds = publish_named(&owner.t).await;
    let id: cix_protocol::catalogue::DatasetId = ds.dataset.parse().unwrap();
    let store = requester.node.shared.store.clone();
    eventually("the requester to learn the entry", || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
    // The peers page asks a connected peer with no kept profile for it, and shows its
    // jurisdiction.
    owner.add_user("vera", Role::Viewer);
    let vera = owner.log_in("vera", "vera password 123").await;
    let peers = owner.get("/console/api/peers", Some(&vera)).await;
    let listed = peers
        .body
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["agency"] == "Environment Office"))
        .unwrap_or_else(|| panic!("the requester is not listed: {}", peers.body));
    assert_eq!(listed["jurisdiction"], "US", "{}", peers.body);
    let o = access::request(&requester.node, id, "flood model calibration", false)
        .await
        .unwrap();
    assert_eq!(o.status, "pending");
    let queued = owner.t.node.shared.store.requests_in().unwrap();
    let rid = queued[0].id.clone();

    owner.add_user("alan", Role::Approver);
    let alan = owner.log_in("alan", "alan password 123").await;
    // The viewer sees the queue but cannot approve or deny, nor do an admin's job.
    let q = owner.get("/console/api/requests", Some(&vera)).await;
    assert_eq!(q.body["incoming"][0]["state"], "pending", "{}", q.body);
    // The queue names who asks, from the profile the requester signed.
    assert_eq!(
        q.body["incoming"][0]["requester_agency"], "Environment Office",
        "{}",
        q.body
    );
    let path = format!("/console/api/requests/{rid}/approve");
    let refused = owner.post(&path, &vera, json!({})).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body["error"].as_str().unwrap().contains("approver"));
    let deny = owner
        .post(
            &format!("/console/api/requests/{rid}/deny"),
            &vera,
            json!({ "reason": "no" }),
        )
        .await;
    assert_eq!(deny.status, 403);
    assert_eq!(
        owner
            .post("/console/api/audit/note", &alan, json!({ "detail": "hi" }))
            .await
            .status,
        403
    );
    let q = owner.get("/console/api/requests", Some(&vera)).await;
    assert_eq!(q.body["incoming"][0]["state"], "pending");

    // The approver approves; the requester's fetch then completes.
    let ok = owner.post(&path, &alan, json!({})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["by"], "alan");
    let again = owner.post(&path, &alan, json!({})).await;
    assert_eq!(again.status, 400, "already decided: {}", again.body);
    access::request(&requester.node, id, "", false)
        .await
        .unwrap();
    let out = requester.path("named.csv");
    cix_node::transfer::fetch(&requester.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), readings_csv(200));
    // The owner's transfers page lists the served copy by title and counterparty, once the
    // requester's receipt has come back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let served = loop {
        let t = owner.get("/console/api/transfers", Some(&vera)).await;
        if let Some(r) = t.body["receipts"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["role"] == "provider"))
        {
            break r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no receipt on the owner's side: {}",
            t.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(served["title"], "Pressure readings", "{served}");
    assert_eq!(
        served["counterparty_agency"], "Environment Office",
        "{served}"
    );
    assert_eq!(served["dataset"], ds.dataset.as_str(), "{served}");

    let log = owner.t.node.shared.audit.list(&Default::default()).unwrap();
    let by_alan = log
        .iter()
        .find(|r| {
            r.kind == "console"
                && r.detail
                    .as_deref()
                    .is_some_and(|d| d.contains("approved, in the console by alan (approver)"))
        })
        .expect("the approval under alan's name");
    assert_eq!(by_alan.dataset.as_deref(), Some(ds.dataset.as_str()));
    assert_eq!(
        by_alan.peer.as_deref(),
        Some(requester.node.did().to_string().as_str())
    );
    // The log verifies from the console.
    let v = owner.get("/console/api/audit/verify", Some(&vera)).await;
    assert_eq!(v.body["ok"], true, "{}", v.body);
    assert!(v.body["records"].as_u64().unwrap() >= 3);
    // The dataset page has its grant.
    let page = owner
        .get(
            &format!("/console/api/datasets/{}", ds.dataset),
            Some(&vera),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["entry"]["title"], "Pressure readings");
    assert_eq!(
        page.body["grants"].as_array().unwrap().len(),
        1,
        "{}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_through_the_admin_api() {
    common::init_tracing();
    let c = console("Water Board", vec![]).await;
    let bearer = ("Authorization", format!("Bearer {}", c.token));
    let add = |body: Value| {
        call(
            "POST",
            format!("{}/v1/users", c.base),
            vec![bearer.clone()],
            Some(body),
        )
    };
    let a = add(json!({ "name": "ada", "role": "approver", "password": "ada password 123" })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        add(json!({ "name": "ada", "role": "viewer", "password": "ada password 123" }))
            .await
            .status,
        400
    );
    assert_eq!(
        add(json!({ "name": "bob", "role": "owner", "password": "bob password 123" }))
            .await
            .status,
        400
    );
    assert_eq!(
        add(json!({ "name": "bob", "role": "viewer", "password": "short" }))
            .await
            .status,
        400
    );
    let none = call("GET", format!("{}/v1/users", c.base), vec![], None).await;
    assert_eq!(none.status, 401, "the bearer token guards it");
    let list = call(
        "GET",
        format!("{}/v1/users", c.base),
        vec![bearer.clone()],
        None,
    )
    .await;
    assert_eq!(
        list.body,
        json!([{ "name": "ada", "role": "approver", "created": list.body[0]["created"] }])
    );
    c.log_in("ada", "ada password 123").await;
    let rm = call(
        "POST",
        format!("{}/v1/users/ada/remove", c.base),
        vec![bearer.clone()],
        Some(json!({})),
    )
    .await;
    assert_eq!(rm.status, 200);
    assert_eq!(
        c.login(json!({ "name": "ada", "password": "ada password 123" }))
            .await
            .status,
        401
    );
}

/// `specs/console.md`'s table of limits states every bound of `console::limits` with its value,
/// and names no other.
#[test]
fn the_spec_states_every_console_limit() {
    use cix_node::console::limits::*;
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/console.md"))
        .unwrap();
    let ours: Vec<(&str, u64)> = vec![
        ("MAX_SESSIONS", MAX_SESSIONS as u64),
        ("SESSION_IDLE_SECS", SESSION_IDLE_SECS),
        ("SESSION_MAX_SECS", SESSION_MAX_SECS),
        ("MAX_USERS", MAX_USERS as u64),
        ("MAX_USER_NAME_BYTES", MAX_USER_NAME_BYTES as u64),
        ("MIN_PASSWORD_CHARS", MIN_PASSWORD_CHARS as u64),
        ("MAX_PASSWORD_BYTES", MAX_PASSWORD_BYTES as u64),
        (
            "MAX_LOGIN_FAILURES_PER_MINUTE",
            u64::from(MAX_LOGIN_FAILURES_PER_MINUTE),
        ),
        ("MAX_CONCURRENT_LOGINS", MAX_CONCURRENT_LOGINS as u64),
        ("MAX_EVENT_STREAMS", MAX_EVENT_STREAMS as u64),
        ("MAX_CONSOLE_BODY_BYTES", MAX_CONSOLE_BODY_BYTES as u64),
        ("MAX_MAP_SHAPE_BYTES", MAX_MAP_SHAPE_BYTES),
        ("MAX_MAP_BYTES", MAX_MAP_BYTES),
        ("MAX_AUDIT_LISTED", MAX_AUDIT_LISTED as u64),
        ("MAX_PROFILES_ASKED", MAX_PROFILES_ASKED as u64),
        ("PROFILE_WAIT_SECS", PROFILE_WAIT_SECS),
    ];
    // Rows of the form | `NAME` | VALUE | what |
    let rows: Vec<(String, String)> = spec
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let upper = name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            (upper && cells.len() >= 4).then(|| (name.to_string(), cells[2].to_string()))
        })
        .collect();
    for (name, value) in &ours {
        let stated = rows.iter().find(|(n, _)| n == name);
        assert_eq!(
            stated.map(|(_, v)| v.as_str()),
            Some(value.to_string().as_str()),
            "specs/console.md's limits table for {name}"
        );
    }
    for (name, _) in &rows {
        assert!(
            ours.iter().any(|(n, _)| n == name),
            "specs/console.md names {name}, which console::limits does not have"
        );
    }
}
