//! One request, one answer, on a libp2p stream: the shape that `/cix/receipt/1`,
//! `/cix/quality/1`, `/cix/rights/1` and `/cix/emergency/1` share.
//!
//! Each side writes one length-prefixed CBOR message ([`crate::codec`]) bounded by the
//! protocol's own limits, and the whole exchange runs under one timeout. The server side takes
//! at most a fixed number of exchanges at once; a stream beyond that is dropped with a warning,
//! and a malformed request is dropped with a warning naming the peer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::identity::Did;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, warn};

use crate::codec::{read_message, write_message};
use crate::node::{peer_of_did, Node};

/// What one request-response protocol is: its name, the bounds of each side's message, how long
/// one exchange may take and how many a node serves at once.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The protocol name, `/cix/<name>/<version>`.
    pub protocol: &'static str,
    /// Largest request, in bytes.
    pub request_limit: usize,
    /// Largest response, in bytes.
    pub response_limit: usize,
    /// Longest one exchange may take, both ways.
    pub timeout: Duration,
    /// Most exchanges served at once.
    pub concurrent: usize,
}

impl Exchange {
    fn stream_protocol(&self) -> StreamProtocol {
        StreamProtocol::new(self.protocol)
    }

    /// Sends `req` to `to` and reads its answer.
    ///
    /// # Errors
    ///
    /// If the peer cannot be reached, or answers late or malformed.
    pub async fn ask<Req, Resp>(&self, node: &Node, to: &Did, req: &Req) -> Result<Resp>
    where
        Req: Serialize + Sync,
        Resp: Serialize + DeserializeOwned,
    {
        let protocol = self.protocol;
        let peer = peer_of_did(to)?;
        if !node.locate(peer).await? {
            bail!("{to} is not connected and no address is known");
        }
        let mut control = node.control();
        let mut stream = control
            .open_stream(peer, self.stream_protocol())
            .await
            .map_err(|e| anyhow!("cannot open {protocol} to {to}: {e}"))?;
        tokio::time::timeout(self.timeout, async {
            write_message(&mut stream, req, self.request_limit).await?;
            let resp: Resp = read_message(&mut stream, self.response_limit).await?;
            let _ = stream.close().await;
            Ok::<_, std::io::Error>(resp)
        })
        .await
        .map_err(|_| anyhow!("{to} did not answer on {protocol} in time"))?
        .with_context(|| format!("malformed answer on {protocol}"))
    }

    /// Serves the protocol until the node stops: each request is read, given to `handle` with
    /// the peer that sent it, and its answer written back.
    ///
    /// # Errors
    ///
    /// If the protocol is already registered.
    pub fn serve<Req, Resp, F, Fut>(
        self,
        node: Node,
        handle: F,
    ) -> Result<tokio::task::JoinHandle<()>>
    where
        Req: Serialize + DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + Sync + 'static,
        F: Fn(Node, PeerId, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Resp> + Send + 'static,
    {
        let protocol = self.protocol;
        let mut control = node.control();
        let mut incoming = control
            .accept(self.stream_protocol())
            .map_err(|e| anyhow!("cannot accept {protocol}: {e}"))?;
        let slots = Arc::new(tokio::sync::Semaphore::new(self.concurrent));
        let handle = Arc::new(handle);
        Ok(tokio::spawn(async move {
            let mut stopping = node.shared.stopping.clone();
            while !*stopping.borrow() {
                let next = tokio::select! {
                    next = incoming.next() => next,
                    _ = stopping.changed() => None,
                };
                let Some((peer, mut stream)) = next else {
                    break;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    warn!(%peer, protocol, "request dropped: too many at once");
                    continue;
                };
                let node = node.clone();
                let handle = handle.clone();
                tokio::spawn(async move {
                    let answered = tokio::time::timeout(self.timeout, async {
                        let req: Req = match read_message(&mut stream, self.request_limit).await {
                            Ok(r) => r,
                            Err(e) => {
                                warn!(%peer, protocol, error = %e, "malformed request");
                                return Ok(());
                            }
                        };
                        let resp = handle(node, peer, req).await;
                        write_message(&mut stream, &resp, self.response_limit).await
                    })
                    .await;
                    if !matches!(answered, Ok(Ok(()))) {
                        debug!(%peer, protocol, "exchange ended early");
                    }
                    let _ = stream.close().await;
                    drop(permit);
                });
            }
        }))
    }
}
