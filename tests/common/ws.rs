//! A WebSocket echo backend for the upgrade tests: accepts one connection,
//! reports the handshake's target and `Host`, and echoes text and binary
//! messages until the client closes.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// A running WebSocket echo backend on 127.0.0.1.
pub struct WsBackend {
    pub port: u16,
    /// The upgrade request's target and `Host`, once the handshake is in.
    pub seen: oneshot::Receiver<(String, String)>,
    pub task: JoinHandle<()>,
}

/// Starts a [`WsBackend`] on a free port.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
pub async fn ws_echo_backend() -> WsBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen) = oneshot::channel::<(String, String)>();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let cb = |req: &Request, resp: Response| {
            let host = req
                .headers()
                .get("host")
                .map(|h| h.to_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            let _ = seen_tx.send((req.uri().to_string(), host));
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, cb)
            .await
            .unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Text(_) | Message::Binary(_) => ws.send(msg).await.unwrap(),
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    WsBackend { port, seen, task }
}
