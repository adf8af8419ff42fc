//! The ClientHello peek and the replaying stream, on in-memory streams.

use std::sync::Arc;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The first flight of a rustls client for `server_name`.
fn client_hello(server_name: &str) -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write");
    }
    out
}

/// Peeks `bytes` written in `chunk`-byte pieces, then closed.
async fn peek_chunks(bytes: &[u8], chunk: usize) -> io::Result<Peeked> {
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        for piece in bytes.chunks(chunk.max(1)) {
            if client.write_all(piece).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        // Keep the stream open: the peek must decide on what it has.
        std::future::pending::<()>().await;
    });
    let peeked = peek(&mut server).await;
    writer.abort();
    peeked
}

#[tokio::test]
async fn the_sni_is_read_and_every_byte_kept() {
    let hello = client_hello("Pass.Example");
    let peeked = peek_chunks(&hello, hello.len()).await.expect("peek");
    assert_eq!(peeked.sni.as_deref(), Some("pass.example"));
    assert_eq!(peeked.hello, hello);
}

#[tokio::test]
async fn a_client_hello_in_small_pieces_is_read_whole() {
    let hello = client_hello("pass.example");
    for chunk in [1, 3, 5, 200] {
        let peeked = peek_chunks(&hello, chunk).await.expect("peek");
        assert_eq!(peeked.sni.as_deref(), Some("pass.example"), "chunk {chunk}");
        assert_eq!(peeked.hello, hello);
    }
}

#[tokio::test]
async fn without_sni_or_tls_nothing_is_passed_through() {
    // An IP address: rustls sends no SNI.
    let hello = client_hello("127.0.0.1");
    let peeked = peek_chunks(&hello, hello.len()).await.expect("peek");
    assert_eq!(peeked.sni, None);
    assert_eq!(peeked.hello, hello);
    // Plain HTTP on the HTTPS port: left to the handshake to refuse.
    let http = b"GET / HTTP/1.1\r\nHost: pass.example\r\n\r\n";
    let peeked = peek_chunks(http, http.len()).await.expect("peek");
    assert_eq!(peeked.sni, None);
    assert_eq!(peeked.hello, http);
}

#[tokio::test]
async fn the_peek_is_bounded() {
    // A handshake record announcing a huge ClientHello, then filler.
    let mut bytes = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
    bytes.resize(MAX_PEEK * 2, 0);
    let peeked = peek_chunks(&bytes, 4096).await.expect("peek");
    assert_eq!(peeked.sni, None);
    assert!(peeked.hello.len() <= MAX_PEEK, "{}", peeked.hello.len());
}

#[tokio::test]
async fn a_client_closing_mid_hello_is_an_error() {
    let hello = client_hello("pass.example");
    let (mut client, mut server) = tokio::io::duplex(64 * 1024);
    client.write_all(&hello[..10]).await.expect("write");
    drop(client);
    assert!(peek(&mut server).await.is_err());
}

#[tokio::test]
async fn rewind_replays_then_reads_on() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.write_all(b" world").await.expect("write");
    drop(client);
    let mut rewind = Rewind::new(b"hello".to_vec(), server);
    let mut out = String::new();
    rewind.read_to_string(&mut out).await.expect("read");
    assert_eq!(out, "hello world");
}

proptest! {
    /// Arbitrary bytes never panic the peek, and are all kept.
    #[test]
    fn arbitrary_bytes_are_kept(bytes in proptest::collection::vec(any::<u8>(), 1..4096)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let (tx, mut rx) = tokio::io::duplex(8192);
        let peeked = rt.block_on(async {
            let mut tx = tx;
            tx.write_all(&bytes).await.expect("write");
            drop(tx);
            peek(&mut rx).await
        });
        if let Ok(peeked) = peeked {
            prop_assert!(bytes.starts_with(&peeked.hello));
        }
    }
}
