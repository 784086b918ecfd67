//! Framing for cix's request-response protocols and streams: a 4-byte big-endian length, then
//! one canonical CBOR item. The length is checked against the message's limit before a single
//! byte of the body is read, so a peer that declares 4 GiB costs us nothing.

use std::io;
use std::marker::PhantomData;

use cix_protocol::cbor;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{de::DeserializeOwned, Serialize};

/// Reads one length-prefixed canonical CBOR message of at most `limit` bytes.
///
/// # Errors
///
/// `InvalidData` for an oversized or malformed message; the I/O error otherwise.
pub async fn read_message<T, R>(io: &mut R, limit: usize) -> io::Result<T>
where
    T: Serialize + DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds the limit of {limit}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    cbor::from_slice(&buf, limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one length-prefixed canonical CBOR message.
///
/// # Errors
///
/// `InvalidData` if it cannot be encoded or exceeds `limit`; the I/O error otherwise.
pub async fn write_message<T, W>(io: &mut W, msg: &T, limit: usize) -> io::Result<()>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let bytes = cbor::to_vec(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "refusing to send {} bytes, over the limit of {limit}",
                bytes.len()
            ),
        ));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.flush().await
}

/// A request-response codec for one pair of message types with their limits.
#[derive(Debug)]
pub struct Codec<Req, Resp> {
    request_limit: usize,
    response_limit: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> Codec<Req, Resp> {
    /// A codec with the given limits.
    pub fn new(request_limit: usize, response_limit: usize) -> Self {
        Self {
            request_limit,
            response_limit,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for Codec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::new(self.request_limit, self.response_limit)
    }
}

impl<Req, Resp> libp2p::request_response::Codec for Codec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + Sync + 'static,
    Resp: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, self.request_limit).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, self.response_limit).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &req, self.request_limit).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &res, self.response_limit).await
    }
}
