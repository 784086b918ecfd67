//! The admin API client: finds the running node through `HOME/node.json`, authenticates with
//! `HOME/admin.token`.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_node::Home;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long an ordinary admin call may take (fetch streams have no limit).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
    streaming: ureq::Agent,
}

impl Client {
    pub(crate) fn connect(home: &Home) -> Result<Self> {
        let info = home.load_runtime()?;
        let token = home.load_token()?;
        let make = |timeout| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(timeout)
                .build()
                .into()
        };
        Ok(Self {
            base: info.admin_url,
            token,
            agent: make(Some(CALL_TIMEOUT)),
            streaming: make(None),
        })
    }

    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        anyhow!(
            "cannot reach the node's admin API at {} ({e}); is `cix node run` still running?",
            self.base
        )
    }

    fn decode<T: DeserializeOwned>(mut resp: ureq::http::Response<ureq::Body>) -> Result<T> {
        let status = resp.status();
        let body: Value = resp
            .body_mut()
            .read_json()
            .context("the node sent an unreadable answer")?;
        if !status.is_success() {
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            bail!("{msg}");
        }
        serde_json::from_value(body).context("the node's answer has an unexpected shape")
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e))?;
        Self::decode(resp)
    }

    /// GET of a text (not JSON) answer, at most `limit` bytes.
    pub(crate) fn get_text(&self, path: &str, limit: u64) -> Result<String> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Self::decode::<Value>(resp).map(|_| String::new());
        }
        resp.body_mut()
            .with_config()
            .limit(limit)
            .read_to_string()
            .context("cannot read the node's answer")
    }

    /// GET with URL query parameters (encoded here; keys may repeat).
    pub(crate) fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        pairs: &[(&str, String)],
    ) -> Result<T> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .query_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e))?;
        Self::decode(resp)
    }

    pub(crate) fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .map_err(|e| self.unreachable(e))?;
        Self::decode(resp)
    }

    /// Posts and hands each JSON line of the streamed answer to `each`.
    pub(crate) fn post_lines(
        &self,
        path: &str,
        body: &Value,
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let resp = self
            .streaming
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Self::decode::<Value>(resp).map(|_| ());
        }
        let reader = BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("the connection to the node broke")?;
            if line.trim().is_empty() {
                continue;
            }
            each(serde_json::from_str(&line).context("the node sent an unreadable line")?)?;
        }
        Ok(())
    }
}
